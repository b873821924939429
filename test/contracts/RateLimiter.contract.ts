// The RateLimiter contract, for every interpreter: a token bucket per key, `limit` takes per
// `windowMs`, refilled continuously by the caller's Clock (driven here by TestClock).
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, type Layer } from "effect"
import { TestClock } from "effect/testing"
import { RateLimiter, type RateRule } from "../../src/services/RateLimiter.ts"
import { fresh } from "./support.ts"

/** 3 takes per 3 s: one token back every second. The window is long in real time too, so a slow
 * run cannot see a store's own expiry of an idle bucket. */
const rule: RateRule = { scope: "message", limit: 3, windowMs: 3_000 }
const REFILL_MS = rule.windowMs / rule.limit

export const suite = (name: string, makeLayer: () => Layer.Layer<RateLimiter, unknown>) =>
  describe(`RateLimiter contract (${name})`, () => {
    const withLimiter = <A, E>(body: (limiter: RateLimiter["Service"]) => Effect.Effect<A, E>) =>
      Effect.flatMap(RateLimiter, body).pipe(Effect.provide(makeLayer()))

    const key = () => `message:${fresh("sb")}`

    /** How many of `n` takes in a row pass. */
    const passing = (limiter: RateLimiter["Service"], k: string, n: number) =>
      Effect.map(
        Effect.forEach(Array.from({ length: n }), () => Effect.result(limiter.consume(k, rule))),
        (results) => results.filter((r) => r._tag === "Success").length
      )

    it.effect("lets `limit` takes through, then refuses with RateLimited for the rule's scope and a wait", () =>
      withLimiter((limiter) =>
        Effect.gen(function*() {
          const k = key()
          for (let i = 0; i < rule.limit; i++) yield* limiter.consume(k, rule)
          const refused = yield* Effect.flip(limiter.consume(k, rule))
          expect(refused._tag).toBe("RateLimited")
          if (refused._tag !== "RateLimited") return
          expect(refused.scope).toBe("message")
          expect(refused.retryAfterMs).toBeGreaterThan(0)
          expect(refused.retryAfterMs).toBeLessThanOrEqual(REFILL_MS)
        })
      ))

    it.effect("each key has its own bucket", () =>
      withLimiter((limiter) =>
        Effect.gen(function*() {
          const [drained, other] = [key(), key()]
          expect(yield* passing(limiter, drained, rule.limit + 1)).toBe(rule.limit)
          expect(yield* passing(limiter, other, rule.limit + 1)).toBe(rule.limit)
        })
      ))

    it.effect("a take after the advertised wait passes, and one token comes back per windowMs / limit", () =>
      withLimiter((limiter) =>
        Effect.gen(function*() {
          const k = key()
          expect(yield* passing(limiter, k, rule.limit)).toBe(rule.limit)
          yield* TestClock.adjust(Duration.millis(REFILL_MS / 2))
          const refused = yield* Effect.flip(limiter.consume(k, rule))
          expect(refused._tag === "RateLimited" && refused.retryAfterMs).toBe(REFILL_MS / 2)
          yield* TestClock.adjust(Duration.millis(REFILL_MS / 2))
          expect(yield* passing(limiter, k, 2)).toBe(1)
          yield* TestClock.adjust(Duration.millis(2 * REFILL_MS))
          expect(yield* passing(limiter, k, 3)).toBe(2)
        })
      ))

    it.effect("refills no further than the burst size", () =>
      withLimiter((limiter) =>
        Effect.gen(function*() {
          const k = key()
          expect(yield* passing(limiter, k, rule.limit)).toBe(rule.limit)
          yield* TestClock.adjust(Duration.hours(1))
          expect(yield* passing(limiter, k, rule.limit + 2)).toBe(rule.limit)
        })
      ))

    it.effect("concurrent takes on one key never pass more than the limit", () =>
      withLimiter((limiter) =>
        Effect.gen(function*() {
          const k = key()
          const results = yield* Effect.all(
            Array.from({ length: 20 }, () => Effect.result(limiter.consume(k, rule))),
            { concurrency: "unbounded" }
          )
          expect(results.filter((r) => r._tag === "Success")).toHaveLength(rule.limit)
        })
      ))

    // A limit of this speed (a service's publishes) may be served from tokens an interpreter
    // holds locally; it is still one limit, exact at any instant.
    const fast: RateRule = { scope: "publish", limit: 2_000, windowMs: 1_000 }

    it.effect("a fast limit lets exactly `limit` takes through at one instant, then refuses with a wait", () =>
      withLimiter((limiter) =>
        Effect.gen(function*() {
          const k = `publish:${fresh("svc")}`
          let passed = 0
          for (let i = 0; i < fast.limit + 50; i++) {
            if ((yield* Effect.result(limiter.consume(k, fast)))._tag === "Success") passed += 1
          }
          expect(passed).toBe(fast.limit)
          const refused = yield* Effect.flip(limiter.consume(k, fast))
          expect(refused._tag === "RateLimited" && refused.scope).toBe("publish")
          expect(refused._tag === "RateLimited" && refused.retryAfterMs).toBeGreaterThan(0)
        })
      ))

    it.effect("concurrent takes on a fast limit never pass more than the limit", () =>
      withLimiter((limiter) =>
        Effect.gen(function*() {
          const k = `publish:${fresh("svc")}`
          const results = yield* Effect.all(
            Array.from({ length: fast.limit + 500 }, () => Effect.result(limiter.consume(k, fast))),
            { concurrency: "unbounded" }
          )
          expect(results.filter((r) => r._tag === "Success")).toHaveLength(fast.limit)
        })
      ))
  })
