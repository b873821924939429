// The TicketStore contract, for every interpreter: `take` answers true at most once per jti,
// across concurrent callers, and never after the jti's TTL.
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, type Layer } from "effect"
import { TicketStore } from "../../src/services/TicketStore.ts"
import { freshSubject, jti } from "./support.ts"

export const suite = (name: string, makeLayer: () => Layer.Layer<TicketStore, unknown>) =>
  describe(`TicketStore contract (${name})`, () => {
    const withStore = <A, E>(body: (store: TicketStore["Service"]) => Effect.Effect<A, E>) =>
      Effect.flatMap(TicketStore, body).pipe(Effect.provide(makeLayer()))
    // Every ticket is some subject's; jtis are unique, so one subject serves the suite.
    const subject = freshSubject()

    it.live("take after put answers true once, then false", () =>
      withStore((store) =>
        Effect.gen(function*() {
          const id = jti()
          yield* store.put(subject, id, Duration.seconds(60))
          expect(yield* store.take(subject, id)).toBe(true)
          expect(yield* store.take(subject, id)).toBe(false)
        })
      ))

    it.live("take of a jti never put answers false", () =>
      withStore((store) =>
        Effect.gen(function*() {
          expect(yield* store.take(subject, jti())).toBe(false)
        })
      ))

    it.live("jtis are independent: taking one leaves the others in place", () =>
      withStore((store) =>
        Effect.gen(function*() {
          const [a, b] = [jti(), jti()]
          yield* store.put(subject, a, Duration.seconds(60))
          yield* store.put(subject, b, Duration.seconds(60))
          expect(yield* store.take(subject, a)).toBe(true)
          expect(yield* store.take(subject, a)).toBe(false)
          expect(yield* store.take(subject, b)).toBe(true)
        })
      ))

    it.live("of 100 concurrent takes of one jti, exactly one answers true", () =>
      withStore((store) =>
        Effect.gen(function*() {
          const id = jti()
          yield* store.put(subject, id, Duration.seconds(60))
          const answers = yield* Effect.all(Array.from({ length: 100 }, () => store.take(subject, id)), { concurrency: "unbounded" })
          expect(answers.filter((taken) => taken)).toHaveLength(1)
        })
      ))

    it.live("a jti is taken before its TTL, and answers false once the TTL has passed", () =>
      withStore((store) =>
        Effect.gen(function*() {
          const [early, late] = [jti(), jti()]
          yield* store.put(subject, early, Duration.millis(300))
          yield* store.put(subject, late, Duration.millis(300))
          expect(yield* store.take(subject, early)).toBe(true)
          yield* Effect.sleep(Duration.millis(450))
          expect(yield* store.take(subject, late)).toBe(false)
        })
      ))
  })
