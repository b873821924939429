// Verifies access tokens from the configured issuer against its JWKS, with asymmetric
// algorithms only, and maps their claims to a principal. Every failure looks the same.
import { Context, type Effect } from "effect"
import type { Unauthenticated } from "../domain/Errors.ts"
import type { Principal } from "../domain/Principal.ts"

export interface AccessGrant {
  readonly principal: Principal
  /** The token's `exp`, in seconds since the epoch: no session outlives it. */
  readonly expiresAt: number
  /** The token's `iat` in seconds (0 when it has none): a revocation refuses older tokens. */
  readonly issuedAt: number
}

export class AccessTokens extends Context.Service<AccessTokens, {
  readonly verify: (token: string, nowMs: number) => Effect.Effect<AccessGrant, Unauthenticated>
}>()("tidings/AccessTokens") {}
