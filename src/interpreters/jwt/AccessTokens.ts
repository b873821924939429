// Access tokens from the hospital's issuer, checked against its JWKS: pinned asymmetric
// algorithms (RS256, ES256, EdDSA), `iss`, `aud`, `exp`, `nbf` with 30 s tolerance. Keys come
// only from the configured JWKS: a token's own `jku`, `x5u` or embedded `jwk` is never used.
// jose finds the key (kid and alg matching, the remote set's cache and cooldown); the
// signature is checked here with node:crypto, synchronously: jose checks it with WebCrypto,
// a thread-pool job per token that cost a new session more than the check itself.
import { Effect, Layer, Metric } from "effect"
import { createLocalJWKSet, createRemoteJWKSet, customFetch, errors, type FetchImplementation, type JSONWebKeySet, type JWSHeaderParameters } from "jose"
import { createHash, KeyObject, verify as verifyBytes, type webcrypto } from "node:crypto"
import { Unauthenticated } from "../../domain/Errors.ts"
import { fromClaims } from "../../domain/Principal.ts"
import { type AccessGrant, AccessTokenMetrics, AccessTokens } from "../../services/AccessTokens.ts"
import { jsonObject, partsOf } from "./Jws.ts"

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
  /** Verified tokens remembered at most (default 20,000; tests use a few). */
  readonly rememberMax?: number
}

/**
 * A verified token is remembered, by its SHA-256 (never the token itself), so a client
 * reconnecting with the same token (tokens live an hour, sessions minutes) or a service
 * publishing thousands of events with one does not pay the signature check again. An entry
 * answers until the earlier of the token's `exp` (with the verifier's tolerance, read on the
 * caller's clock) and 10 minutes after it was checked, the most the JWKS is cached
 * (`cacheMaxAge` below): a key the issuer withdraws keeps a token good at most 20 minutes (the
 * key cached 10, then a token checked with it remembered 10). Revocation is not the verifier's business: it is by subject
 * (`Sessions`), checked at ticket and session time whatever answered here.
 * At most 20,000 entries (about 320 bytes each, ~6 MB), least recently used first out: enough
 * for every token a node sees in 10 minutes at 30 connects a second, and a flood of distinct
 * tokens only evicts, never grows the heap.
 */
const REMEMBER_MS = 600_000
export const REMEMBER_MAX = 20_000

type Algorithm = "RS256" | "ES256" | "EdDSA"

const invalid = Effect.fail(new Unauthenticated({ cause: "invalid" }))
/** The keys of the set that may have signed it: one, or each of several sharing a kid. */
const candidates = async (
  keys: (header: JWSHeaderParameters, token: { payload: string; signature: string }) => Promise<unknown>,
  header: JWSHeaderParameters,
  payload: string,
  signature: string
): Promise<ReadonlyArray<unknown>> => {
  try {
    return [await keys(header, { payload, signature })]
  } catch (error) {
    if (!(error instanceof errors.JWKSMultipleMatchingKeys)) throw error
    const all: Array<unknown> = []
    for await (const key of error as unknown as AsyncIterable<unknown>) all.push(key)
    return all
  }
}

/** A public key and the one algorithm it may check (RSA keys of 2048 bits or more only). */
interface Verifier {
  readonly key: KeyObject
  readonly alg: Algorithm | undefined
}

const algorithmOf = (key: KeyObject): Algorithm | undefined => {
  if (key.type !== "public") return undefined
  switch (key.asymmetricKeyType) {
    case "rsa":
      return (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048 ? "RS256" : undefined
    case "ec":
      return key.asymmetricKeyDetails?.namedCurve === "prime256v1" ? "ES256" : undefined
    case "ed25519":
    case "ed448":
      return "EdDSA"
    default:
      return undefined
  }
}

// jose imports each JWK once and hands back the same CryptoKey, so its KeyObject (and what
// it may check: KeyObject's getters cost a native call each time) is worked out once.
const verifiers = new WeakMap<object, Verifier>()
const verifierOf = (key: unknown): Verifier | undefined => {
  if (typeof key !== "object" || key === null) return undefined
  let verifier = verifiers.get(key)
  if (verifier === undefined) {
    const object = key instanceof KeyObject ? key : KeyObject.from(key as webcrypto.CryptoKey)
    verifier = { key: object, alg: algorithmOf(object) }
    verifiers.set(key, verifier)
  }
  return verifier
}

/** The signature, checked with a key of the algorithm's own type. */
const signedBy = (alg: Algorithm, verifier: Verifier | undefined, data: Buffer, signature: Buffer): boolean => {
  if (verifier === undefined || verifier.alg !== alg) return false
  const key = verifier.key
  switch (alg) {
    case "RS256":
      return verifyBytes("sha256", data, key, signature)
    case "ES256":
      return signature.length === 64 && verifyBytes("sha256", data, { key, dsaEncoding: "ieee-p1363" }, signature)
    case "EdDSA":
      return verifyBytes(null, data, key, signature)
  }
}

/** A key or signature node:crypto cannot use is a refusal, never a thrown error (a 500). */
const checks = (alg: Algorithm, key: unknown, data: Buffer, signature: Buffer): boolean => {
  try {
    return signedBy(alg, verifierOf(key), data, signature)
  } catch {
    return false
  }
}

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
      cacheMaxAge: REMEMBER_MS,
      timeoutDuration: 5_000,
      ...(options.jwks.fetch === undefined ? {} : { [customFetch]: options.jwks.fetch })
    })
  // The claims as jose's jwtVerify checks them, with the same options: iss, aud (a string or
  // a list holding ours), exp required, nbf if present, numeric dates, 30 s of tolerance.
  const claimsOf = (payloadPart: string, nowMs: number): Effect.Effect<AccessGrant, Unauthenticated> => {
    const payload = jsonObject(payloadPart)
    if (payload === undefined) return invalid
    const now = Math.floor(nowMs / 1000)
    const { iss, aud, exp, nbf, iat } = payload
    if (iss !== options.issuer) return invalid
    if (!(aud === options.audience || (Array.isArray(aud) && aud.includes(options.audience)))) return invalid
    if (typeof exp !== "number" || !Number.isFinite(exp)) return invalid
    if (iat !== undefined && (typeof iat !== "number" || !Number.isFinite(iat))) return invalid
    if (nbf !== undefined && (typeof nbf !== "number" || !Number.isFinite(nbf) || nbf > now + CLOCK_TOLERANCE_S)) return invalid
    if (exp <= now - CLOCK_TOLERANCE_S) return Effect.fail(new Unauthenticated({ cause: "expired" }))
    const principal = fromClaims(payload)
    if (principal === undefined) return Effect.fail(new Unauthenticated({ cause: "unknown_principal" }))
    return Effect.succeed({ principal, expiresAt: exp, issuedAt: typeof iat === "number" ? iat : 0 })
  }

  // A Map iterates in insertion order: a hit is moved to the end, so the first key is the
  // least recently used one.
  const remembered = new Map<string, Remembered>()
  const rememberMax = options.rememberMax ?? REMEMBER_MAX
  const remember = (digest: string, grant: AccessGrant, nowMs: number) => {
    // A token already remembered (two checks of it at once) replaces its entry: nothing to evict.
    if (!remembered.has(digest) && remembered.size >= rememberMax) remembered.delete(remembered.keys().next().value!)
    remembered.set(digest, { grant, until: nowMs + REMEMBER_MS })
  }

  const check = (token: string, nowMs: number): Effect.Effect<AccessGrant, Unauthenticated> => {
    const parts = partsOf(token)
    if (parts === undefined) return invalid
    const [headerPart, payloadPart, signaturePart] = parts
    const header = jsonObject(headerPart)
    // No extension we would have to understand (RFC 7515 §4.1.11), and an algorithm we pin.
    if (header === undefined || header.crit !== undefined || typeof header.alg !== "string" || !ALGORITHMS.includes(header.alg)) {
      return invalid
    }
    const alg = header.alg as Algorithm
    const signature = Buffer.from(signaturePart, "base64url")
    const data = Buffer.from(`${headerPart}.${payloadPart}`)
    return Effect.andThen(Metric.update(AccessTokenMetrics.signature, 1), Effect.tryPromise({
      try: () => candidates(keys, header as JWSHeaderParameters, payloadPart, signaturePart),
      catch: () => new Unauthenticated({ cause: "invalid" })
    }).pipe(
      Effect.flatMap((found) => {
        if (!found.some((key) => checks(alg, key, data, signature))) return invalid
        return claimsOf(payloadPart, nowMs)
      })
    ))
  }

  return AccessTokens.of({
    verify: (token, nowMs) => {
      const digest = createHash("sha256").update(token).digest("base64url")
      const known = remembered.get(digest)
      if (known !== undefined) {
        remembered.delete(digest)
        // The same expiry rule as the check: exp plus the tolerance, on the caller's clock.
        if (nowMs < known.until && nowMs < (known.grant.expiresAt + CLOCK_TOLERANCE_S) * 1000) {
          remembered.set(digest, known)
          return Effect.as(Metric.update(AccessTokenMetrics.memory, 1), known.grant)
        }
      }
      return Effect.tap(check(token, nowMs), (grant) => Effect.sync(() => remember(digest, grant, nowMs)))
    }
  })
}

export const layer = (options: IssuerOptions) => Layer.sync(AccessTokens, () => make(options))
