// Issue and consume one-time tickets: the only place a session's principal comes into
// being. A ticket is signed, lives 60 s, and its jti can be taken from the store once.
import { Clock, Duration, Effect } from "effect"
import { Forbidden, TicketRejected, Unauthenticated } from "../domain/Errors.ts"
import { subjectOf } from "../domain/Principal.ts"
import { TICKET_TTL_S } from "../domain/Limits.ts"
import type { TicketClaims } from "../domain/Ticket.ts"
import type { AccessGrant } from "../services/AccessTokens.ts"
import { AuditLog } from "../services/AuditLog.ts"
import { Sessions } from "../services/Sessions.ts"
import { Settings } from "../services/Settings.ts"
import { TicketSigner } from "../services/TicketSigner.ts"
import { TicketStore } from "../services/TicketStore.ts"
import { admit, auditReady } from "./Admit.ts"
import * as Ids from "./Ids.ts"
import * as Metrics from "./Metrics.ts"

export interface IssuedTicket {
  readonly ticket: string
  readonly expiresIn: number
}

/**
 * A ticket for a patient or clinician. A subject revoked after its access token was issued
 * gets none: revocation would mean little if the same token could fetch a fresh ticket.
 */
export const issue = Effect.fnUntraced(function*(grant: AccessGrant, peer?: string) {
  const user = grant.principal
  if (user._tag !== "Patient" && user._tag !== "Clinician") return yield* new Forbidden()
  const settings = yield* Settings
  const audit = yield* AuditLog
  const subject = subjectOf(user)
  yield* auditReady
  // Three independent reads of the shared store, sent together: one round trip, not three.
  const [, , revokedAt] = yield* Effect.all([
    peer === undefined ? Effect.void : admit(`ticket-ip:${peer}`, settings.rates.ticketsPerIp),
    admit(`ticket:${subject}`, settings.rates.tickets, subject),
    (yield* Sessions).revokedAt(subject)
  ], { concurrency: "unbounded" })
  if (revokedAt !== undefined && grant.issuedAt * 1000 <= revokedAt) {
    yield* audit.append({ event: "ticket.rejected", subject, cause: "revoked", result: "refused" })
    return yield* new Unauthenticated({ cause: "revoked" })
  }
  const now = yield* Clock.currentTimeMillis
  const claims: TicketClaims = {
    jti: Ids.jti(),
    user,
    issuedAt: now,
    expiresAt: now + TICKET_TTL_S * 1000,
    sessionExpiresAt: grant.expiresAt * 1000
  }
  const ticket = yield* (yield* TicketSigner).sign(claims)
  yield* (yield* TicketStore).put(claims.jti, Duration.seconds(TICKET_TTL_S))
  // Answered only once durable. The ticket.consumed record stays an append: the session's
  // committed ws.opened, chained after it, makes it durable before the session is answered.
  yield* audit.commit({ event: "ticket.issued", jti: claims.jti, subject, result: "ok" })
  return { ticket, expiresIn: TICKET_TTL_S } satisfies IssuedTicket
})

/**
 * Checks signature, audience and expiry, then takes the jti (so even a refused ticket is
 * burned), then refuses tickets issued before the subject's last revocation.
 */
export const consume = Effect.fnUntraced(function*(ticket: string | undefined, origin?: string) {
  const audit = yield* AuditLog
  const outcome = yield* Effect.gen(function*() {
    if (ticket === undefined) return yield* new TicketRejected({ cause: "missing" })
    const now = yield* Clock.currentTimeMillis
    const claims = yield* (yield* TicketSigner).verify(ticket, now)
    // Taken (burned) whatever the revocation says, so both go out together: one round trip.
    const [taken, revokedAt] = yield* Effect.all([
      (yield* TicketStore).take(claims.jti),
      (yield* Sessions).revokedAt(subjectOf(claims.user))
    ], { concurrency: "unbounded" })
    if (!taken) return yield* new TicketRejected({ cause: "used" })
    if (revokedAt !== undefined && claims.issuedAt <= revokedAt) return yield* new TicketRejected({ cause: "revoked" })
    return claims
  }).pipe(
    Effect.tapError((error) =>
      Effect.andThen(
        error._tag === "TicketRejected" ? Metrics.authFailed("ticket", error.cause) : Effect.void,
        audit.append({
          event: "ticket.rejected",
          result: "refused",
          cause: error._tag === "TicketRejected" ? error.cause : error._tag,
          ...(origin === undefined ? {} : { origin })
        })
      )
    )
  )
  yield* audit.append({
    event: "ticket.consumed",
    jti: outcome.jti,
    subject: subjectOf(outcome.user),
    result: "ok",
    ...(origin === undefined ? {} : { origin })
  })
  return outcome
})
