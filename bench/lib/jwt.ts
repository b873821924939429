// The bench is the identity provider: an ES256 key, its JWKS file for Tidings, and access tokens
// signed synchronously with node:crypto (no promise per token), as compact JWS.
import { createPublicKey, generateKeyPairSync, type KeyObject, createPrivateKey, sign, createHash } from "node:crypto"

export const ISSUER = "https://issuer.bench.invalid"
export const AUDIENCE = "tidings-bench"

export interface IssuerKey {
  readonly privatePem: string
  readonly kid: string
}

export const makeIssuerKey = (): IssuerKey => {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" })
  const jwk = createPublicKey(privateKey).export({ format: "jwk" })
  const kid = createHash("sha256").update(JSON.stringify([jwk.crv, jwk.x, jwk.y])).digest("base64url").slice(0, 16)
  return { privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(), kid }
}

export const jwksOf = (key: IssuerKey) => {
  const jwk = createPublicKey(createPrivateKey(key.privatePem)).export({ format: "jwk" })
  return { keys: [{ ...jwk, kid: key.kid, alg: "ES256", use: "sig" }] }
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

export const makeSigner = (key: IssuerKey) => {
  const privateKey: KeyObject = createPrivateKey(key.privatePem)
  const header = b64({ alg: "ES256", kid: key.kid, typ: "at+jwt" })
  return (claims: { readonly role: string; readonly ref: string; readonly scope?: string }, lifetimeS = 3600): string => {
    const now = Math.floor(Date.now() / 1000)
    const body = b64({ iss: ISSUER, aud: AUDIENCE, sub: claims.ref, iat: now, exp: now + lifetimeS, ...claims })
    const input = `${header}.${body}`
    const signature = sign("sha256", Buffer.from(input), { key: privateKey, dsaEncoding: "ieee-p1363" })
    return `${input}.${signature.toString("base64url")}`
  }
}
