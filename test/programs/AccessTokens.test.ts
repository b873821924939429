// Access tokens checked against the issuer's JWKS fetched from its URL: keys are cached, a
// rotation is followed when a token names a new key, a removed key stops working, and a
// forged kid cannot make the gateway hammer the issuer.
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { exportJWK, SignJWT } from "jose"
import { generateKeyPairSync, type KeyObject } from "node:crypto"
import * as AccessTokens from "../../src/interpreters/jwt/AccessTokens.ts"

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

const verifier = (source: ReturnType<typeof issuer>, cooldownMs: number) =>
  AccessTokens.make({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks: { _tag: "Remote", url: new URL(`${ISSUER}/jwks.json`), fetch: source.fetch, cooldownMs }
  })

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
      // A service's token verified a moment ago is remembered for up to a minute…
      expect(yield* outcome(verify, old)).toBe("Service")
      // …after which the cached set, now k2 only, decides: k1 no longer verifies.
      expect(yield* outcome(verify, old, Date.now() + 61_000)).toBe("Unauthenticated:invalid")
    }))

  it.live("remembers a verified token for a minute at most, and never past its exp (with the 30 s tolerance)", () =>
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

  it.live("does not remember a patient's or clinician's token: a key the issuer withdrew stops it at once", () =>
    Effect.gen(function*() {
      const source = issuer()
      const [k1, k2] = [key("k1"), key("k2")]
      source.publish([k1])
      const verify = verifier(source, 0)
      const user = yield* Effect.promise(() => token(k1))
      expect(yield* outcome(verify, user)).toBe("Patient")
      source.publish([k2])
      // A token naming k2 makes the gateway fetch the keys again: k1 is gone from them.
      expect(yield* outcome(verify, yield* Effect.promise(() => token(k2)))).toBe("Patient")
      // So the user's token is refused at once, where a service's would pass for a minute.
      expect(yield* outcome(verify, user)).toBe("Unauthenticated:invalid")
    }))

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
})
