// The live sessions of every subject, across nodes: the per-subject cap, revocation, and
// this node's own sessions so an ended care relationship can reach them.
import { Context, type Effect } from "effect"
import type { Channel } from "../domain/Channel.ts"
import type { SessionRevoked, TooManySessions, Unavailable } from "../domain/Errors.ts"
import type { Subject } from "../domain/Principal.ts"

/** What the registry may do to a session it holds. */
export interface LiveSession {
  readonly id: string
  /** `role:ref`: a patient and a clinician with the same ref are two subjects. */
  readonly subject: Subject
  /** When it opened (ms): a revocation at or after this time ends it. */
  readonly openedAt: number
  /** Ends the session from outside (revocation); the session closes with the error's code. */
  readonly end: (reason: SessionRevoked) => void
  /**
   * Checks one channel again (its care relationship changed); if the session may no longer
   * see it, the subscription ends and the client is told `forbidden`.
   */
  readonly reauthorize: (channel: Channel) => void
  /** Checks every channel it holds again (changes may have been missed). */
  readonly reauthorizeAll: () => void
}

export class Sessions extends Context.Service<Sessions, {
  /**
   * Holds the session until the returned effect (its release) runs; refuses a subject over
   * its cap. A release rather than a Scope: a Scope per idle socket is memory held for hours.
   */
  readonly register: (session: LiveSession) => Effect.Effect<Effect.Effect<void>, TooManySessions | Unavailable>
  /** Ends every session of the subject on every node, and remembers when. */
  readonly revoke: (subject: Subject, atMs: number) => Effect.Effect<void, Unavailable>
  /** When the subject was last revoked (ms), if within the revocation window. */
  readonly revokedAt: (subject: Subject) => Effect.Effect<number | undefined, Unavailable>
  /** This node's sessions of the subject. */
  readonly local: (subject: Subject) => ReadonlyArray<LiveSession>
  /** Every session on this node. */
  readonly everyLocal: () => ReadonlyArray<LiveSession>
}>()("tidings/Sessions") {}
