// Signs and checks tickets with the gateway's own key (shared by every node). Checking
// covers signature, algorithm, audience and expiry; single use is the TicketStore's job.
import { Context, type Effect } from "effect"
import type { TicketRejected } from "../domain/Errors.ts"
import type { TicketClaims } from "../domain/Ticket.ts"

export class TicketSigner extends Context.Service<TicketSigner, {
  readonly sign: (claims: TicketClaims) => Effect.Effect<string>
  /** `nowMs` comes from the caller's Clock, so tests can move time. */
  readonly verify: (ticket: string, nowMs: number) => Effect.Effect<TicketClaims, TicketRejected>
}>()("tidings/TicketSigner") {}
