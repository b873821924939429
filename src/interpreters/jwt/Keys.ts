// Asymmetric keys for JWS: which algorithm a key implies, and its `kid` (RFC 7638
// thumbprint), so keys can rotate with an overlap window.
import { calculateJwkThumbprint, exportJWK } from "jose"
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto"

export interface SigningKey {
  readonly alg: "ES256" | "EdDSA"
  readonly kid: string
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
}

const algOf = (key: KeyObject): "ES256" | "EdDSA" => {
  if (key.asymmetricKeyType === "ed25519") return "EdDSA"
  if (key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1") return "ES256"
  throw new Error("signing key must be EC P-256 or Ed25519")
}

export const signingKey = async (privateKey: KeyObject): Promise<SigningKey> => {
  const publicKey = createPublicKey(privateKey)
  const kid = await calculateJwkThumbprint(await exportJWK(publicKey))
  return { alg: algOf(privateKey), kid, privateKey, publicKey }
}

export const fromPem = (pem: string): Promise<SigningKey> => signingKey(createPrivateKey(pem))

export const generate = (): Promise<SigningKey> =>
  signingKey(generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey)
