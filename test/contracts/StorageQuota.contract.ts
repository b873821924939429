// The StorageQuota contract, for every interpreter: a service is refused once its last day's
// stored bytes or begun channels reach its quota (the Redis interpreter learns the cluster's
// totals within a second), with a retry time within the hour; other services are not held back.
import { describe, expect, it } from "@effect/vitest"
import { Effect, type Layer, Result } from "effect"
import { HOUR_MS } from "../../src/domain/Quota.ts"
import { StorageQuota } from "../../src/services/StorageQuota.ts"
import { eventually, fresh } from "./support.ts"

/** The quota the suite's layers are built with. */
export const QUOTA = { bytes: 10_000, channels: 3 } as const

export const suite = (name: string, makeLayer: () => Layer.Layer<StorageQuota, unknown>) =>
  describe(`StorageQuota contract (${name})`, () => {
    const withQuota = <A, E>(body: (quota: StorageQuota["Service"]) => Effect.Effect<A, E>) =>
      Effect.scoped(Effect.flatMap(StorageQuota, body)).pipe(Effect.provide(makeLayer()))
    const refusal = (quota: StorageQuota["Service"], service: string) =>
      Effect.map(Effect.result(quota.check(service)), (r) => (Result.isFailure(r) ? r.failure : undefined))

    it.live("refuses a service once its stored bytes reach the quota, with a retry within the hour", () =>
      withQuota((quota) =>
        Effect.gen(function*() {
          const service = fresh("svc")
          yield* quota.check(service)
          yield* quota.charge(service, QUOTA.bytes / 2, false)
          yield* quota.charge(service, QUOTA.bytes / 2, false)
          yield* eventually(refusal(quota, service), (e) => e !== undefined, 3_000, "the service is refused")
          const error = (yield* refusal(quota, service))!
          expect(error._tag).toBe("RateLimited")
          expect(error.scope).toBe("storage")
          expect(error.retryAfterMs).toBeGreaterThan(0)
          expect(error.retryAfterMs).toBeLessThanOrEqual(HOUR_MS)
        })
      ))

    it.live("refuses a service once it began as many channels as the quota allows", () =>
      withQuota((quota) =>
        Effect.gen(function*() {
          const service = fresh("svc")
          for (let i = 0; i < QUOTA.channels; i++) yield* quota.charge(service, 1, true)
          yield* eventually(refusal(quota, service), (e) => e !== undefined, 3_000, "the service is refused")
        })
      ))

    it.live("counts events on channels already begun as bytes only, and never holds back another service", () =>
      withQuota((quota) =>
        Effect.gen(function*() {
          const [busy, other] = [fresh("svc"), fresh("svc")]
          for (let i = 0; i < 20; i++) yield* quota.charge(busy, 100, false)
          yield* quota.charge(busy, QUOTA.bytes, false)
          yield* eventually(refusal(quota, busy), (e) => e !== undefined, 3_000, "the busy service is refused")
          expect(yield* refusal(quota, other)).toBeUndefined()
          yield* quota.charge(other, QUOTA.bytes - 1, false)
          yield* Effect.sleep("1500 millis")
          expect(yield* refusal(quota, other)).toBeUndefined()
        })
      ))
  })
