// Access tokens checked against the issuer's JWKS fetched from its URL: keys are cached, a
// rotation is followed when a token names a new key, a removed key stops working, and a
// forged kid cannot make the gateway hammer the issuer. A verified token is remembered (by
// hash, bounded, never past its exp) so a reconnect with it costs no signature check.
import { describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Metric } from "effect"
import { TestClock } from "effect/testing"
import { exportJWK, SignJWT } from "jose"
import { generateKeyPairSync, type KeyObject, sign } from "node:crypto"
import * as AccessTokens from "../../src/interpreters/jwt/AccessTokens.ts"
import { AccessTokenMetrics } from "../../src/services/AccessTokens.ts"

const ISSUER = "https://issuer.example.test"
const AUDIENCE = "tidings"

interface Key {
  readonly kid: string
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
}
const key = (kid: string): Key => ({ kid, ...generateKeyPairSync("ec", { namedCurve: "prime256v1" }) })

const PATIENT = { role: "patient", ref: "pt_jwks_000001" }
const SERVICE = { role: "service", ref: "svc_jwks_0001", scope: "events:publish" }

const token = (k: Key, nowS = Math.floor(Date.now() / 1000), claims: Record<string, string> = PATIENT) =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: "ES256", kid: k.kid })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt(nowS)
    .setExpirationTime(nowS + 600)
    .sign(k.privateKey)

/** An issuer whose published keys the test changes; counts how often it is asked. */
const issuer = () => {
  let published: ReadonlyArray<Key> = []
  let fetches = 0
  const urls: Array<string> = []
  return {
    publish: (keys: ReadonlyArray<Key>) => {
      published = keys
    },
    fetches: () => fetches,
    urls: () => urls,
    fetch: async (url: string) => {
      fetches += 1
      urls.push(url)
      const keys = await Promise.all(published.map(async (k) => ({ ...(await exportJWK(k.publicKey)), kid: k.kid, alg: "ES256", use: "sig" })))
      return new Response(JSON.stringify({ keys }), { status: 200, headers: { "content-type": "application/json" } })
    }
  }
}

const verifier = (source: ReturnType<typeof issuer>, cooldownMs: number, rememberMax?: number) =>
  AccessTokens.make({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks: { _tag: "Remote", url: new URL(`${ISSUER}/jwks.json`), fetch: source.fetch, cooldownMs },
    ...(rememberMax === undefined ? {} : { rememberMax })
  })

/** The verifications so far that checked a signature, and those answered from memory. */
const checks = Effect.all({
  signature: Effect.map(Metric.value(AccessTokenMetrics.signature), (state) => state.count),
  memory: Effect.map(Metric.value(AccessTokenMetrics.memory), (state) => state.count)
})

/** A registry of the test's own, so its counts start at zero whatever else ran. */
const counted = <A, E>(self: Effect.Effect<A, E>) => Effect.provideService(self, Metric.MetricRegistry, new Map())

const outcome = (verify: ReturnType<typeof verifier>, jwt: string, nowMs = Date.now()) =>
  verify.verify(jwt, nowMs).pipe(
    Effect.map((grant) => grant.principal._tag),
    Effect.catch((error) => Effect.succeed(`${error._tag}:${error.cause}`))
  )

describe("AccessTokens with a remote JWKS", () => {
  it.live("fetches the keys once and serves later tokens from the cache", () =>
    Effect.gen(function*() {
      const source = issuer()
      const k1 = key("k1")
      source.publish([k1])
      const verify = verifier(source, 30_000)
      expect(yield* outcome(verify, yield* Effect.promise(() => token(k1)))).toBe("Patient")
      expect(yield* outcome(verify, yield* Effect.promise(() => token(k1)))).toBe("Patient")
      expect(source.fetches()).toBe(1)
    }))

  it.live("follows a rotation: a token with the new kid triggers a fetch, and a removed key stops working", () =>
    Effect.gen(function*() {
      const source = issuer()
      const [k1, k2] = [key("k1"), key("k2")]
      source.publish([k1])
      const verify = verifier(source, 0)
      const old = yield* Effect.promise(() => token(k1, undefined, SERVICE))
      expect(yield* outcome(verify, old)).toBe("Service")
      source.publish([k2])
      expect(yield* outcome(verify, yield* Effect.promise(() => token(k2)))).toBe("Patient")
      expect(source.fetches()).toBe(2)
      // A token verified a moment ago is remembered for up to ten minutes (the key cache's age)…
      expect(yield* outcome(verify, old)).toBe("Service")
      // …after which the cached set, now k2 only, decides: k1 no longer verifies.
      expect(yield* outcome(verify, old, Date.now() + 601_000)).toBe("Unauthenticated:invalid")
    }))

  it.live("remembers a verified token for ten minutes at most, and never past its exp (with the 30 s tolerance)", () =>
    Effect.gen(function*() {
      const source = issuer()
      const k1 = key("k1")
      source.publish([k1])
      const verify = verifier(source, 0)
      const nowS = Math.floor(Date.now() / 1000)
      const short = yield* Effect.promise(() =>
        new SignJWT(SERVICE)
          .setProtectedHeader({ alg: "ES256", kid: k1.kid })
          .setIssuer(ISSUER)
          .setAudience(AUDIENCE)
          .setIssuedAt(nowS)
          .setExpirationTime(nowS + 5)
          .sign(k1.privateKey)
      )
      expect(yield* outcome(verify, short, nowS * 1000)).toBe("Service")
      expect(yield* outcome(verify, short, (nowS + 34) * 1000)).toBe("Service")
      expect(yield* outcome(verify, short, (nowS + 36) * 1000)).toBe("Unauthenticated:expired")
      expect(source.fetches()).toBe(1)
    }))

  it.effect("answers from memory on the caller's clock: never past exp (+30 s), never ten minutes after the check", () =>
    counted(Effect.gen(function*() {
      const source = issuer()
      const k1 = key("k1")
      source.publish([k1])
      const verify = verifier(source, 0)
      const signed = (exp: number) =>
        Effect.promise(() =>
          new SignJWT(PATIENT).setProtectedHeader({ alg: "ES256", kid: k1.kid }).setIssuer(ISSUER).setAudience(AUDIENCE)
            .setIssuedAt(0).setExpirationTime(exp).sign(k1.privateKey))
      const [short, long] = [yield* signed(300), yield* signed(3600)]
      const at = (jwt: string) => Effect.flatMap(Clock.currentTimeMillis, (ms) => outcome(verify, jwt, ms))
      expect([yield* at(short), yield* at(long)]).toEqual(["Patient", "Patient"])
      yield* TestClock.adjust(Duration.seconds(329))
      expect([yield* at(short), yield* at(long)]).toEqual(["Patient", "Patient"])
      expect(yield* checks).toEqual({ signature: 2, memory: 2 })
      // 330 s: the short token's exp plus the tolerance. Remembered, yet refused: checked again.
      yield* TestClock.adjust(Duration.seconds(1))
      expect(yield* at(short)).toBe("Unauthenticated:expired")
      expect(yield* checks).toEqual({ signature: 3, memory: 2 })
      yield* TestClock.adjust(Duration.seconds(269))
      expect(yield* at(long)).toBe("Patient")
      expect(yield* checks).toEqual({ signature: 3, memory: 3 })
      // Ten minutes after its check the long one is checked again (and remembered anew).
      yield* TestClock.adjust(Duration.seconds(1))
      expect([yield* at(long), yield* at(long)]).toEqual(["Patient", "Patient"])
      expect(yield* checks).toEqual({ signature: 4, memory: 4 })
    })))

  it.live("checks a patient's token once: the same token again (a reconnect) is answered from memory", () =>
    counted(Effect.gen(function*() {
      const source = issuer()
      const k1 = key("k1")
      source.publish([k1])
      const verify = verifier(source, 0)
      const [patient, clinician] = yield* Effect.promise(() =>
        Promise.all([token(k1), token(k1, undefined, { role: "clinician", ref: "cl_jwks_000001" })]))
      for (let i = 0; i < 5; i++) {
        expect(yield* outcome(verify, patient)).toBe("Patient")
        expect(yield* outcome(verify, clinician)).toBe("Clinician")
      }
      expect(yield* checks).toEqual({ signature: 2, memory: 8 })
    })))

  it.live("never remembers a refused token: a forged one is checked, and refused, every time", () =>
    counted(Effect.gen(function*() {
      const source = issuer()
      const [k1, forger] = [key("k1"), key("k1")]
      source.publish([k1])
      const verify = verifier(source, 0)
      const forged = yield* Effect.promise(() => token(forger))
      for (let i = 0; i < 3; i++) expect(yield* outcome(verify, forged)).toBe("Unauthenticated:invalid")
      expect(yield* checks).toEqual({ signature: 3, memory: 0 })
    })))

  it.live("holds at most rememberMax tokens, dropping the least recently used", () =>
    counted(Effect.gen(function*() {
      const source = issuer()
      const k1 = key("k1")
      source.publish([k1])
      const verify = verifier(source, 0, 3)
      const [t1, t2, t3, t4] = yield* Effect.promise(() =>
        Promise.all([1, 2, 3, 4].map((n) => token(k1, undefined, { role: "patient", ref: `pt_lru_00000${n}` }))))
      for (const t of [t1!, t2!, t3!]) yield* outcome(verify, t)
      expect(yield* checks).toEqual({ signature: 3, memory: 0 })
      // t1 is used again, so t2 is now the least recently used: t4 pushes it out.
      yield* outcome(verify, t1!)
      yield* outcome(verify, t4!)
      expect(yield* checks).toEqual({ signature: 4, memory: 1 })
      for (const t of [t1!, t3!, t4!]) expect(yield* outcome(verify, t)).toBe("Patient")
      expect(yield* checks).toEqual({ signature: 4, memory: 4 })
      expect(yield* outcome(verify, t2!)).toBe("Patient")
      expect(yield* checks).toEqual({ signature: 5, memory: 4 })
    })))

  it.live("asks the issuer at most once per cooldown for kids it does not know", () =>
    Effect.gen(function*() {
      const source = issuer()
      const [k1, forged] = [key("k1"), key("forged")]
      source.publish([k1])
      const verify = verifier(source, 30_000)
      expect(yield* outcome(verify, yield* Effect.promise(() => token(k1)))).toBe("Patient")
      for (let i = 0; i < 20; i++) {
        expect(yield* outcome(verify, yield* Effect.promise(() => token(forged)))).toBe("Unauthenticated:invalid")
      }
      expect(source.fetches()).toBeLessThanOrEqual(2)
    }))

  it.live("never follows a key named by the token itself: jku, x5u or an embedded jwk", () =>
    Effect.gen(function*() {
      const source = issuer()
      const [k1, attacker] = [key("k1"), key("k1")]
      source.publish([k1])
      const verify = verifier(source, 0)
      const attackerJwk = { ...(yield* Effect.promise(() => exportJWK(attacker.publicKey))), kid: "k1" }
      const now = Math.floor(Date.now() / 1000)
      for (const header of [
        { jku: "https://evil.example.test/jwks.json" },
        { x5u: "https://evil.example.test/cert.pem" },
        { jwk: attackerJwk }
      ]) {
        const forged = yield* Effect.promise(() =>
          new SignJWT({ role: "patient", ref: "pt_jwks_000001" })
            .setProtectedHeader({ alg: "ES256", kid: "k1", ...header })
            .setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt(now).setExpirationTime(now + 600)
            .sign(attacker.privateKey)
        )
        expect(yield* outcome(verify, forged)).toBe("Unauthenticated:invalid")
      }
      // Only the configured JWKS URL was ever fetched.
      expect(new Set(source.urls())).toEqual(new Set([`${ISSUER}/jwks.json`]))
    }))

  it.live("refuses alg none (any spelling) with a non-empty signature part at the algorithm pin, before any key is looked up", () =>
    Effect.gen(function*() {
      const source = issuer()
      const k1 = key("k1")
      source.publish([k1])
      const verify = verifier(source, 0)
      const now = Math.floor(Date.now() / 1000)
      const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")
      const payload = b64({ ...PATIENT, iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 600 })
      for (const alg of ["none", "None", "NONE", "nOnE"]) {
        const input = `${b64({ alg, kid: "k1", typ: "JWT" })}.${payload}`
        // A real signature by the issuer's key over these bytes, and plain junk: neither may count.
        const signed = sign("sha256", Buffer.from(input), { key: k1.privateKey, dsaEncoding: "ieee-p1363" }).toString("base64url")
        for (const signature of [signed, "AAAA", "bm9uZQ"]) {
          expect(yield* outcome(verify, `${input}.${signature}`), `${alg} ${signature}`).toBe("Unauthenticated:invalid")
        }
      }
      // Refused for its algorithm: the issuer's key set was never even fetched.
      expect(source.fetches()).toBe(0)
      // The control: the same claims under ES256 pass.
      expect(yield* outcome(verify, yield* Effect.promise(() => token(k1)))).toBe("Patient")
    }))
})

describe("AccessTokens checks (local JWKS)", () => {
  const ec = key("ec-1")
  const rsa = { kid: "rsa-1", ...generateKeyPairSync("rsa", { modulusLength: 2048 }) }
  const weak = { kid: "rsa-weak", ...generateKeyPairSync("rsa", { modulusLength: 1024 }) }
  const twin = key("twin")
  const twinOther = key("twin")
  const nowS = 1_800_000_000
  const jwk = async (k: { kid: string; publicKey: KeyObject }, alg: string) => ({ ...(await exportJWK(k.publicKey)), kid: k.kid, alg, use: "sig" })
  const local = async () =>
    AccessTokens.make({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: {
        _tag: "Local",
        jwks: { keys: [await jwk(ec, "ES256"), await jwk(rsa, "RS256"), await jwk(weak, "RS256"), await jwk(twinOther, "ES256"), await jwk(twin, "ES256")] }
      }
    })
  const b64 = (value: unknown) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url")
  /** A compact JWS over exactly these parts (the payload may be anything, even not JSON). */
  const raw = (k: { kid: string; privateKey: KeyObject }, alg: string, payload: unknown, header: Record<string, unknown> = {}, der = false) => {
    const input = `${b64({ alg, kid: k.kid, ...header })}.${b64(payload)}`
    const signature = alg === "RS256"
      ? sign("sha256", Buffer.from(input), k.privateKey)
      : sign("sha256", Buffer.from(input), { key: k.privateKey, dsaEncoding: der ? "der" : "ieee-p1363" })
    return `${input}.${signature.toString("base64url")}`
  }
  const claims = (extra: Record<string, unknown> = {}) => ({ ...PATIENT, iss: ISSUER, aud: AUDIENCE, iat: nowS, exp: nowS + 600, ...extra })
  const at = (verify: Awaited<ReturnType<typeof local>>, jwt: string, s = nowS) => outcome(verify, jwt, s * 1000)

  it.effect("allows 30 s of clock skew on exp and nbf, and no more", () =>
    Effect.gen(function*() {
      const verify = yield* Effect.promise(local)
      expect(yield* at(verify, raw(ec, "ES256", claims({ exp: nowS - 29 })))).toBe("Patient")
      expect(yield* at(verify, raw(ec, "ES256", claims({ exp: nowS - 30 })))).toBe("Unauthenticated:expired")
      expect(yield* at(verify, raw(ec, "ES256", claims({ nbf: nowS + 30 })))).toBe("Patient")
      expect(yield* at(verify, raw(ec, "ES256", claims({ nbf: nowS + 31 })))).toBe("Unauthenticated:invalid")
    }))

  it.effect("takes an audience list that holds ours, and refuses one that does not", () =>
    Effect.gen(function*() {
      const verify = yield* Effect.promise(local)
      expect(yield* at(verify, raw(ec, "ES256", claims({ aud: ["other", AUDIENCE] })))).toBe("Patient")
      expect(yield* at(verify, raw(ec, "ES256", claims({ aud: ["other"] })))).toBe("Unauthenticated:invalid")
      expect(yield* at(verify, raw(ec, "ES256", claims({ iss: undefined })))).toBe("Unauthenticated:invalid")
    }))

  it.effect("refuses a crit header, a payload that is not a JSON object, and dates that are not numbers", () =>
    Effect.gen(function*() {
      const verify = yield* Effect.promise(local)
      expect(yield* at(verify, raw(ec, "ES256", claims(), { crit: ["exp"] }))).toBe("Unauthenticated:invalid")
      expect(yield* at(verify, raw(ec, "ES256", "not json"))).toBe("Unauthenticated:invalid")
      expect(yield* at(verify, raw(ec, "ES256", [claims()]))).toBe("Unauthenticated:invalid")
      expect(yield* at(verify, raw(ec, "ES256", claims({ exp: String(nowS + 600) })))).toBe("Unauthenticated:invalid")
      expect(yield* at(verify, raw(ec, "ES256", claims({ iat: "yesterday" })))).toBe("Unauthenticated:invalid")
      expect(yield* at(verify, raw(ec, "ES256", claims({ exp: undefined })))).toBe("Unauthenticated:invalid")
      // The control: the same token, well formed, passes.
      expect(yield* at(verify, raw(ec, "ES256", claims()))).toBe("Patient")
    }))

  it.effect("checks each signature with its own key type: RS256 of 2048 bits, ES256 in its 64-byte form", () =>
    Effect.gen(function*() {
      const verify = yield* Effect.promise(local)
      expect(yield* at(verify, raw(rsa, "RS256", claims()))).toBe("Patient")
      expect(yield* at(verify, raw(weak, "RS256", claims()))).toBe("Unauthenticated:invalid")
      expect(yield* at(verify, raw(ec, "ES256", claims(), {}, true))).toBe("Unauthenticated:invalid")
      // An RS256 header naming the EC key's kid: no key of the set fits it.
      expect(yield* at(verify, raw({ ...rsa, kid: ec.kid }, "RS256", claims()))).toBe("Unauthenticated:invalid")
      // A token whose signature was cut or swapped.
      const good = raw(ec, "ES256", claims())
      expect(yield* at(verify, good.slice(0, -4))).toBe("Unauthenticated:invalid")
      expect(yield* at(verify, `${good.split(".").slice(0, 2).join(".")}.${raw(ec, "ES256", claims({ ref: "pt_other_0001" })).split(".")[2]}`))
        .toBe("Unauthenticated:invalid")
    }))

  it.effect("finds the signer among keys that share a kid", () =>
    Effect.gen(function*() {
      const verify = yield* Effect.promise(local)
      expect(yield* at(verify, raw(twin, "ES256", claims()))).toBe("Patient")
      expect(yield* at(verify, raw(twinOther, "ES256", claims()))).toBe("Patient")
      expect(yield* at(verify, raw({ ...key("twin") }, "ES256", claims()))).toBe("Unauthenticated:invalid")
    }))
})
