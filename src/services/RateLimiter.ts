// Shared rate limits: a token bucket per key, refilled continuously, so one limit holds
// across every node. Keys are `scope:subject`; an interpreter that stores them outside the
// process (Redis) must store them hashed, never as raw refs.
import { Context, type Effect } from "effect"
import type { RateLimited, RateScope, Unavailable } from "../domain/Errors.ts"

export interface RateRule {
  readonly scope: RateScope
  /** Burst size and refill: `limit` tokens per `windowMs`. */
  readonly limit: number
  readonly windowMs: number
}

export class RateLimiter extends Context.Service<RateLimiter, {
  readonly consume: (key: string, rule: RateRule) => Effect.Effect<void, RateLimited | Unavailable>
}>()("tidings/RateLimiter") {}
