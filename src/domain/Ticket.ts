// The one-time ticket that turns an access token into a WebSocket session: what it
// carries and how long it lives. Signing and checking live behind services/TicketSigner.
import { Schema } from "effect"
import type { User } from "./Principal.ts"
import type { Jti } from "./Ref.ts"

/** A compact JWS: three base64url parts, bounded so a huge "ticket" is refused unparsed. */
export const TicketString = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9_-]{1,1024}\.[A-Za-z0-9_-]{1,2048}\.[A-Za-z0-9_-]{1,512}$/)
)

export interface TicketClaims {
  readonly jti: Jti
  readonly user: User
  /** Milliseconds since the epoch (the JWT carries whole seconds plus `iam`, the exact ms). */
  readonly issuedAt: number
  readonly expiresAt: number
  /** When the access token behind the ticket expires (ms): a session never outlives it. */
  readonly sessionExpiresAt: number
}
