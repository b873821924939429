// Verifies access tokens from the configured issuer against its JWKS, with asymmetric
// algorithms only, and maps their claims to a principal. Every failure looks the same.
import { Context, type Effect, Metric } from "effect"
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

const checks = (source: "memory" | "signature") =>
  Metric.counter("tidings_access_token_checks_total", {
    description: "Access tokens verified, by how: a signature check, or a token verified before and remembered",
    incremental: true,
    attributes: { source }
  })

/** Kept by the interpreter: how many tokens were answered from memory and how many checked. */
export const AccessTokenMetrics = {
  memory: checks("memory"),
  signature: checks("signature")
}
