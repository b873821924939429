// The live sessions of every subject, across nodes: the per-subject cap, revocation, and
// this node's own sessions so an ended care relationship can reach them.
import { Context, type Effect } from "effect"
import type { Channel } from "../domain/Channel.ts"
import type { RateLimited, SessionRevoked, TicketRejected, TooManySessions, Unavailable } from "../domain/Errors.ts"
import type { Subject } from "../domain/Principal.ts"
import type { Jti } from "../domain/Ref.ts"
import type { RateRule } from "./RateLimiter.ts"

/** What the registry may do to a session it holds. */
export interface LiveSession {
  readonly id: string
  /** `role:ref`: a patient and a clinician with the same ref are two subjects. */
  readonly subject: Subject
  /** When it opened (ms). */
  readonly openedAt: number
  /**
   * When the ticket that opened it was issued (ms): a revocation at or after this time ends
   * it (`revokes`), even one made while the session was still being opened.
   */
  readonly issuedAt: number
  /**
   * Ends the session from outside: revoked (4409), or its security checks could not be made
   * for too long (Unavailable, 4503: its client reconnects, to a healthy node).
   */
  readonly end: (reason: SessionRevoked | Unavailable) => void
  /**
   * Checks one channel again (its care relationship changed); if the session may no longer
   * see it, the subscription ends and the client is told `forbidden`.
   */
  readonly reauthorize: (channel: Channel) => void
  /** Checks every channel it holds again (changes may have been missed). */
  readonly reauthorizeAll: () => void
  /**
   * The periodic re-check of each subscription that rests on a care relationship (undefined
   * when none does): one that ended is dropped with `forbidden`, as by `reauthorize`. Fails
   * when an answer could not be had, and then keeps the subscription: the registry retries,
   * and ends the session once its checks have failed for too long.
   */
  readonly recheckCare: () => Effect.Effect<void, Unavailable> | undefined
}

/** The revocation rule: a revocation at or after a ticket's issue time ends what it opened. */
export const revokes = (revokedAt: number | undefined, issuedAt: number): boolean =>
  revokedAt !== undefined && issuedAt <= revokedAt

/**
 * How long a missed revocation or care change may go unrepaired on a node, whatever else
 * fails (a lost broadcast, a deaf control channel, a failing re-check). docs/SECURITY.md.
 */
export const RECHECK_BOUND_MS = 20_000

export class Sessions extends Context.Service<Sessions, {
  /**
   * Holds the session until the returned effect (its release) runs; refuses a subject over
   * its cap, and one revoked at or after the session's `issuedAt` (checked in the same atomic
   * step). A revocation made while `register` runs still ends the session.
   * A release rather than a Scope: a Scope per idle socket is memory held for hours.
   */
  readonly register: (session: LiveSession) => Effect.Effect<Effect.Effect<void>, TooManySessions | SessionRevoked | Unavailable>
  /**
   * Opens a session with the ticket `jti` (put in the TicketStore under the session's subject),
   * in one atomic step: takes the jti (as `TicketStore.take`: refused `used` unless this takes
   * it), refuses `revoked` a ticket issued at or before the subject's last revocation, takes a
   * token from the subject's shared connect bucket (`connect`, as `RateLimiter.consume`), then
   * registers as `register` does. Each refusal after the first leaves the ticket taken.
   */
  readonly open: (
    session: LiveSession,
    jti: Jti,
    connect: RateRule
  ) => Effect.Effect<Effect.Effect<void>, TicketRejected | RateLimited | TooManySessions | Unavailable>
  /**
   * Ends every session of the subject on every node, and remembers when. A node that missed
   * the announcement still ends them within RECHECK_BOUND_MS: each node re-checks its
   * sessions periodically, and ends with Unavailable those it could not check for that long.
   */
  readonly revoke: (subject: Subject, atMs: number) => Effect.Effect<void, Unavailable>
  /** When the subject was last revoked (ms), if within the revocation window. */
  readonly revokedAt: (subject: Subject) => Effect.Effect<number | undefined, Unavailable>
  /** This node's sessions of the subject. */
  readonly local: (subject: Subject) => ReadonlyArray<LiveSession>
  /** Every session on this node. */
  readonly everyLocal: () => ReadonlyArray<LiveSession>
}>()("tidings/Sessions") {}
