// The Health contract, for every interpreter: ready while the backing services answer.
import { describe, expect, it } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import { Health } from "../../src/services/Health.ts"

export const suite = (name: string, makeLayer: () => Layer.Layer<Health, unknown>) =>
  describe(`Health contract (${name})`, () => {
    it.live("is ready while the backing services answer, every time it is asked", () =>
      Effect.gen(function*() {
        const health = yield* Health
        const answers = yield* Effect.forEach([1, 2, 3], () => health.ready)
        expect(answers).toEqual([true, true, true])
      }).pipe(Effect.provide(makeLayer())))
  })
