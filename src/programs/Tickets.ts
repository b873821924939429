// Issue and consume one-time tickets: the only place a session's principal comes into
// being. A ticket is signed, lives 60 s, and its jti can be taken from the store once.
import { Clock, Duration, Effect } from "effect"
import { Forbidden, TicketRejected, Unauthenticated, Unavailable } from "../domain/Errors.ts"
import { subjectOf } from "../domain/Principal.ts"
import { TICKET_TTL_S } from "../domain/Limits.ts"
import type { TicketClaims } from "../domain/Ticket.ts"
import type { AccessGrant } from "../services/AccessTokens.ts"
import { AuditLog } from "../services/AuditLog.ts"
import { revokes, Sessions } from "../services/Sessions.ts"
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
  if (revokes(revokedAt, grant.issuedAt * 1000)) {
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
  yield* (yield* TicketStore).put(subject, claims.jti, Duration.seconds(TICKET_TTL_S))
  // Answered only once durable. The ticket.consumed record stays an append: the session's
  // committed ws.opened, chained after it, makes it durable before the session is answered.
  yield* audit.commit({ event: "ticket.issued", jti: claims.jti, subject, result: "ok" })
  return { ticket, expiresIn: TICKET_TTL_S } satisfies IssuedTicket
})

/** A ticket refused: counted, and audited with its cause (or the error's tag: Unavailable). */
const rejected = (error: TicketRejected | Unavailable, origin: string | undefined) =>
  Effect.andThen(
    error._tag === "TicketRejected" ? Metrics.authFailed("ticket", error.cause) : Effect.void,
    AuditLog.use((audit) =>
      audit.append({
        event: "ticket.rejected",
        result: "refused",
        cause: error._tag === "TicketRejected" ? error.cause : error._tag,
        ...(origin === undefined ? {} : { origin })
      })
    )
  )

/** Checks signature, audience and expiry (no store is asked); a refusal is audited. */
export const verify = (ticket: string | undefined, origin?: string) =>
  Effect.gen(function*() {
    if (ticket === undefined) return yield* new TicketRejected({ cause: "missing" })
    return yield* (yield* TicketSigner).verify(ticket, yield* Clock.currentTimeMillis)
  }).pipe(Effect.tapError((error) => rejected(error, origin)))

/**
 * Redeems verified claims with `take`, which takes the jti (so even a refused ticket is burned)
 * and refuses tickets issued at or before the subject's last revocation: alone (`consume`), or
 * in the same step as the session's registration (`Sessions.open`). What it refused for the
 * ticket (or could not answer) is audited `ticket.rejected`; anything else, `ticket.consumed`.
 */
export const redeem = <A, E, R>(
  claims: TicketClaims,
  take: Effect.Effect<A, E | TicketRejected | Unavailable, R>,
  origin?: string
): Effect.Effect<A, E | TicketRejected | Unavailable, R | AuditLog> => {
  const consumed = AuditLog.use((audit) =>
    audit.append({
      event: "ticket.consumed",
      jti: claims.jti,
      subject: subjectOf(claims.user),
      result: "ok",
      ...(origin === undefined ? {} : { origin })
    })
  )
  return take.pipe(
    Effect.tap(() => consumed),
    Effect.tapError((error) => isTicketFailure(error) ? rejected(error, origin) : consumed)
  )
}

const isTicketFailure = (error: unknown): error is TicketRejected | Unavailable =>
  error instanceof TicketRejected || error instanceof Unavailable

/** Verifies and redeems a ticket that opens no session (a `refresh`): the jti and the revocation. */
export const consume = (ticket: string | undefined, origin?: string) =>
  Effect.flatMap(verify(ticket, origin), (claims) =>
    redeem(
      claims,
      Effect.gen(function*() {
        // Taken (burned) whatever the revocation says, so both go out together: one round trip.
        const [taken, revokedAt] = yield* Effect.all([
          (yield* TicketStore).take(subjectOf(claims.user), claims.jti),
          (yield* Sessions).revokedAt(subjectOf(claims.user))
        ], { concurrency: "unbounded" })
        if (!taken) return yield* new TicketRejected({ cause: "used" })
        if (revokes(revokedAt, claims.issuedAt)) return yield* new TicketRejected({ cause: "revoked" })
        return claims
      }),
      origin
    ))
