// One way through a shared rate limit: take a token, and when the limit refuses, count it and
// audit it once, so every limited action (tickets, connects, publishes) is recorded alike.
import { Effect } from "effect"
import { AuditLog } from "../services/AuditLog.ts"
import { RateLimiter, type RateRule } from "../services/RateLimiter.ts"
import * as Metrics from "./Metrics.ts"

/** `subject` (a raw ref, hashed by the sink) is audited when the limit is per subject. */
export const admit = (key: string, rule: RateRule, subject?: string) =>
  RateLimiter.use((limiter) => limiter.consume(key, rule)).pipe(
    Effect.tapError((error) =>
      error._tag === "RateLimited"
        ? Effect.andThen(
          Metrics.rateLimited(error.scope),
          AuditLog.use((audit) =>
            audit.append({
              event: "rate.limited",
              cause: error.scope,
              result: "refused",
              ...(subject === undefined ? {} : { subject })
            })
          )
        )
        : Effect.void
    )
  )
