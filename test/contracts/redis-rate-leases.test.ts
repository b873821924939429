// Leased tokens of the Redis rate limiter, with two nodes on one throwaway redis-server: a fast
// limit (a service's publishes) is taken from the shared bucket a few tokens at a time, and
// still never lets more through across nodes than the bucket holds.
import { describe, expect, it } from "@effect/vitest"
import { Context, Duration, Effect, Layer, Redacted } from "effect"
import { TestClock } from "effect/testing"
import * as Client from "../../src/interpreters/redis/Client.ts"
import * as RedisRateLimiter from "../../src/interpreters/redis/RateLimiter.ts"
import { RateLimiter, type RateRule } from "../../src/services/RateLimiter.ts"
import { testDataKeysLayer } from "../support/data-key.ts"
import { hasRedisServer, skipReason, useRedis } from "../support/redis.ts"
import { fresh } from "./support.ts"

const fast: RateRule = { scope: "publish", limit: 1_000, windowMs: 1_000 }

describe.skipIf(!hasRedisServer)(`Redis rate limiter leases${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  const server = useRedis()

  const node = () =>
    RedisRateLimiter.layer.pipe(
      Layer.provide(testDataKeysLayer),
      Layer.provide(Client.layer({ _tag: "Single", url: Redacted.make(server.redis.url) }))
    )

  /** Two nodes' limiters, each on its own connection, in one scope. */
  const twoNodes = <A, E>(body: (a: RateLimiter["Service"], b: RateLimiter["Service"]) => Effect.Effect<A, E>) =>
    Effect.scoped(Effect.gen(function*() {
      const a = Context.get(yield* Layer.build(node()), RateLimiter)
      const b = Context.get(yield* Layer.build(node()), RateLimiter)
      return yield* body(a, b)
    }))

  /** Scripts Redis has run so far (a take is one EVALSHA, or one EVAL the first time). */
  const scriptCalls = () =>
    Effect.promise(async () => {
      const stats = await server.admin.info("commandstats")
      let calls = 0
      for (const m of stats.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) calls += Number(m[2])
      return calls
    })

  const passes = (limiter: RateLimiter["Service"], key: string) =>
    Effect.map(Effect.result(limiter.consume(key, fast)), (r) => r._tag === "Success")

  it("leases a hundredth of a second's refill at a time, and only for limits of 200/s or more", () => {
    expect(RedisRateLimiter.leaseSize(fast)).toBe(10)
    expect(RedisRateLimiter.leaseSize({ scope: "publish", limit: 5_000, windowMs: 1_000 })).toBe(50)
    expect(RedisRateLimiter.leaseSize({ scope: "publish", limit: 199, windowMs: 1_000 })).toBe(1)
    expect(RedisRateLimiter.leaseSize({ scope: "connect", limit: 600, windowMs: 60_000 })).toBe(1)
    expect(RedisRateLimiter.leaseSize({ scope: "ticket", limit: 30, windowMs: 60_000 })).toBe(1)
  })

  it.effect("lets no more through across two nodes than the shared bucket holds", () =>
    twoNodes((a, b) =>
      Effect.gen(function*() {
        // Not a multiple of the lease size: the last lease gets what is left, not a full one.
        const odd: RateRule = { ...fast, limit: 1_005 }
        const key = `publish:${fresh("svc")}`
        let passed = 0
        // Alternating, at one instant (TestClock stands still): every leased token gets spent.
        for (let i = 0; i < odd.limit + 100; i++) {
          if ((yield* Effect.result((i % 2 === 0 ? a : b).consume(key, odd)))._tag === "Success") passed += 1
        }
        expect(passed).toBe(odd.limit)
        expect((yield* Effect.result(a.consume(key, odd)))._tag).toBe("Failure")
        expect((yield* Effect.result(b.consume(key, odd)))._tag).toBe("Failure")
      })
    ))

  it.effect("goes to Redis once per lease, not once per take", () =>
    twoNodes((a) =>
      Effect.gen(function*() {
        const key = `publish:${fresh("svc")}`
        const before = yield* scriptCalls()
        for (let i = 0; i < 100; i++) expect(yield* passes(a, key)).toBe(true)
        expect((yield* scriptCalls()) - before).toBe(100 / RedisRateLimiter.leaseSize(fast))
      })
    ))

  it.effect("a slow limit is still one exact take per request", () =>
    twoNodes((a) =>
      Effect.gen(function*() {
        const slow: RateRule = { scope: "connect", limit: 600, windowMs: 60_000 }
        const key = `connect-ip:${fresh("ip")}`
        const before = yield* scriptCalls()
        for (let i = 0; i < 5; i++) yield* a.consume(key, slow)
        expect((yield* scriptCalls()) - before).toBe(5)
      })
    ))

  it.effect("leased tokens lapse after LEASE_MS: a node does not spend them later", () =>
    twoNodes((a) =>
      Effect.gen(function*() {
        const key = `publish:${fresh("svc")}`
        expect(yield* passes(a, key)).toBe(true)
        const leased = yield* scriptCalls()
        expect(yield* passes(a, key)).toBe(true)
        expect(yield* scriptCalls()).toBe(leased)
        yield* TestClock.adjust(Duration.millis(RedisRateLimiter.LEASE_MS))
        expect(yield* passes(a, key)).toBe(true)
        expect(yield* scriptCalls()).toBe(leased + 1)
      })
    ))
})
