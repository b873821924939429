// Access tokens from the hospital's issuer, checked against its JWKS: pinned asymmetric
// algorithms (RS256, ES256, EdDSA), `iss`, `aud`, `exp`, `nbf` with 30 s tolerance. Keys come
// only from the configured JWKS: a token's own `jku`, `x5u` or embedded `jwk` is never used.
import { Effect, Layer } from "effect"
import { createLocalJWKSet, createRemoteJWKSet, customFetch, errors, type FetchImplementation, type JSONWebKeySet, jwtVerify } from "jose"
import { Unauthenticated } from "../../domain/Errors.ts"
import { fromClaims } from "../../domain/Principal.ts"
import { type AccessGrant, AccessTokens } from "../../services/AccessTokens.ts"

export const ALGORITHMS = ["RS256", "ES256", "EdDSA"]
export const CLOCK_TOLERANCE_S = 30

export type JwksSource =
  | { readonly _tag: "Local"; readonly jwks: JSONWebKeySet }
  | {
    readonly _tag: "Remote"
    readonly url: URL
    /** Replaces the platform fetch (tests, or a private CA). */
    readonly fetch?: FetchImplementation
    /** Least time between two fetches for an unknown `kid` (default 30 s). */
    readonly cooldownMs?: number
  }

export interface IssuerOptions {
  readonly issuer: string
  readonly audience: string
  readonly jwks: JwksSource
}

/**
 * A service's verified token is remembered for a short while: a service publishing thousands
 * of events a second with one token should not pay a signature check on each. A remembered
 * token is still refused once its `exp` has passed; the short age bounds how long a key the
 * issuer withdrew from its JWKS keeps a token good. People's tokens are not remembered: each
 * is shown once per ticket, so remembering them would only hold a credential (and memory)
 * per connection for a minute.
 */
const REMEMBER_MS = 60_000
const REMEMBER_MAX = 10_000

interface Remembered {
  readonly grant: AccessGrant
  readonly until: number
}

export const make = (options: IssuerOptions) => {
  const keys = options.jwks._tag === "Local"
    ? createLocalJWKSet(options.jwks.jwks)
    : createRemoteJWKSet(options.jwks.url, {
      // Keys are cached for 10 min; a token naming a key not yet seen (the issuer rotated)
      // triggers a fetch, at most one per cooldown, so forged kids cannot hammer the issuer.
      cooldownDuration: options.jwks.cooldownMs ?? 30_000,
      cacheMaxAge: 600_000,
      timeoutDuration: 5_000,
      ...(options.jwks.fetch === undefined ? {} : { [customFetch]: options.jwks.fetch })
    })
  // Insertion order is age order: the oldest entries go first when the map is full.
  const remembered = new Map<string, Remembered>()
  const remember = (token: string, grant: AccessGrant, nowMs: number) => {
    if (remembered.size >= REMEMBER_MAX) remembered.delete(remembered.keys().next().value!)
    remembered.set(token, { grant, until: nowMs + REMEMBER_MS })
  }

  const check = (token: string, nowMs: number) =>
      Effect.tryPromise({
        try: () =>
          jwtVerify(token, keys, {
            issuer: options.issuer,
            audience: options.audience,
            algorithms: ALGORITHMS,
            clockTolerance: CLOCK_TOLERANCE_S,
            currentDate: new Date(nowMs),
            requiredClaims: ["exp"]
          }),
        catch: (error) => new Unauthenticated({ cause: error instanceof errors.JWTExpired ? "expired" : "invalid" })
      }).pipe(
        Effect.flatMap(({ payload }) => {
          const principal = fromClaims(payload)
          if (principal === undefined || payload.exp === undefined) {
            return Effect.fail(new Unauthenticated({ cause: "unknown_principal" }))
          }
          return Effect.succeed({ principal, expiresAt: payload.exp, issuedAt: payload.iat ?? 0 })
        })
      )

  return AccessTokens.of({
    verify: (token, nowMs) => {
      const known = remembered.get(token)
      if (known !== undefined) {
        // The same expiry rule as jwtVerify: exp plus the tolerance.
        if (nowMs < known.until && nowMs < (known.grant.expiresAt + CLOCK_TOLERANCE_S) * 1000) return Effect.succeed(known.grant)
        remembered.delete(token)
      }
      return Effect.tap(check(token, nowMs), (grant) =>
        grant.principal._tag === "Service" ? Effect.sync(() => remember(token, grant, nowMs)) : Effect.void)
    }
  })
}

export const layer = (options: IssuerOptions) => Layer.sync(AccessTokens, () => make(options))
