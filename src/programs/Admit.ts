// One way through a shared limit: take a token (or check a storage quota), and when the limit
// refuses, count it and audit it once, so every limited action is recorded alike.
import { Effect } from "effect"
import type { RateLimited } from "../domain/Errors.ts"
import { Unavailable } from "../domain/Errors.ts"
import { AuditLog } from "../services/AuditLog.ts"
import { RateLimiter, type RateRule } from "../services/RateLimiter.ts"
import { StorageQuota } from "../services/StorageQuota.ts"
import * as Metrics from "./Metrics.ts"

/** A limit's refusal, counted and audited: by `admit`, or where the token was taken in a wider step. */
export const refused = (error: RateLimited, subject?: string) =>
  Effect.andThen(
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

/** `subject` (a raw ref, hashed by the sink) is audited when the limit is per subject. */
export const admit = (key: string, rule: RateRule, subject?: string) =>
  RateLimiter.use((limiter) => limiter.consume(key, rule)).pipe(
    Effect.tapError((error) => error._tag === "RateLimited" ? refused(error, subject) : Effect.void)
  )

/** A publishing service within its storage quota (refused like a rate limit: 429, counted, audited). */
export const admitStorage = (service: string) =>
  StorageQuota.use((quota) => quota.check(service)).pipe(Effect.tapError((error) => refused(error)))

/**
 * Fail closed: while the audit trail cannot take records, no audited action begins (tickets,
 * sessions, publishes, care changes, revocations: 503 / 4503). Sessions already open go on;
 * their records wait in the writer's buffer.
 */
export const auditReady = AuditLog.use((audit) =>
  Effect.flatMap(audit.ready, (ready) => ready ? Effect.void : Effect.fail(new Unavailable({ service: "audit-log" })))
)
