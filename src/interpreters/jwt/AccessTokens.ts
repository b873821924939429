// Access tokens from the hospital's issuer, checked against its JWKS: pinned asymmetric
// algorithms (RS256, ES256, EdDSA), `iss`, `aud`, `exp`, `nbf` with 30 s tolerance. Keys come
// only from the configured JWKS: a token's own `jku`, `x5u` or embedded `jwk` is never used.
import { Effect, Layer } from "effect"
import { createLocalJWKSet, createRemoteJWKSet, customFetch, errors, type FetchImplementation, type JSONWebKeySet, jwtVerify } from "jose"
import { Unauthenticated } from "../../domain/Errors.ts"
import { fromClaims } from "../../domain/Principal.ts"
import { AccessTokens } from "../../services/AccessTokens.ts"

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
  return AccessTokens.of({
    verify: (token, nowMs) =>
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
  })
}

export const layer = (options: IssuerOptions) => Layer.sync(AccessTokens, () => make(options))
