// Shared rate limits: a token bucket per key, refilled continuously. Keys are built by the
// programs (scope + pseudonymous id), so one limit holds across every node.
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
