// Dev mode's token issuer: a key made at start, tokens valid for an hour, and the JWKS the
// access-token verifier trusts in dev. Production never builds this layer.
import { Effect, Layer } from "effect"
import { exportJWK, SignJWT } from "jose"
import type { Role } from "../../domain/Principal.ts"
import { DevIssuer, scopesFor } from "../../services/DevIssuer.ts"
import * as AccessTokens from "./AccessTokens.ts"
import type { SigningKey } from "./SigningKeys.ts"

export const DEV_ISSUER = "https://tidings.dev.invalid/issuer"
export const DEV_AUDIENCE = "tidings"
const LIFETIME_S = 3600

export const mint = (key: SigningKey, role: Role, ref: string, nowMs = Date.now()): Promise<string> => {
  const scopes = scopesFor(role)
  const now = Math.floor(nowMs / 1000)
  return new SignJWT({ role, ref, ...(scopes.length > 0 ? { scope: scopes.join(" ") } : {}) })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "at+jwt" })
    .setIssuer(DEV_ISSUER)
    .setAudience(DEV_AUDIENCE)
    .setSubject(ref)
    .setIssuedAt(now)
    .setExpirationTime(now + LIFETIME_S)
    .sign(key.privateKey)
}

/** DevIssuer plus the AccessTokens verifier that trusts it. */
export const layer = (key: SigningKey) =>
  Layer.mergeAll(
    Layer.succeed(DevIssuer, DevIssuer.of({ mint: (role, ref) => Effect.promise(() => mint(key, role, ref)) })),
    Layer.unwrap(Effect.promise(async () => {
      const jwk = { ...(await exportJWK(key.publicKey)), kid: key.kid, alg: key.alg, use: "sig" }
      return AccessTokens.layer({
        issuer: DEV_ISSUER,
        audience: DEV_AUDIENCE,
        jwks: { _tag: "Local", jwks: { keys: [jwk] } }
      })
    }))
  )
