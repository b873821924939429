// Where issued tickets wait to be consumed. The guarantee that makes a ticket single-use
// lives here: `take` answers true at most once per jti, across every node, before its TTL.
import { Context, type Duration, type Effect } from "effect"
import type { Unavailable } from "../domain/Errors.ts"
import type { Subject } from "../domain/Principal.ts"
import type { Jti } from "../domain/Ref.ts"

export class TicketStore extends Context.Service<TicketStore, {
  /**
   * Remembers a fresh jti of the subject's ticket for `ttl`. The subject places it beside the
   * subject's other state (on Redis, its slot), where `Sessions.open` takes it too.
   */
  readonly put: (subject: Subject, jti: Jti, ttl: Duration.Duration) => Effect.Effect<void, Unavailable>
  /** Removes the jti and says whether it was there: true at most once per jti. */
  readonly take: (subject: Subject, jti: Jti) => Effect.Effect<boolean, Unavailable>
}>()("tidings/TicketStore") {}
