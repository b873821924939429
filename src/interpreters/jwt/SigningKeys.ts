// Keys for JWS: which algorithm a key implies, and its `kid`, so keys can rotate with an
// overlap window. Asymmetric keys (ES256, EdDSA) sign dev access tokens and may sign tickets;
// a shared secret (HS256) signs tickets only, which the gateway alone makes and checks.
import { calculateJwkThumbprint, exportJWK } from "jose"
import { createHmac, createPrivateKey, createPublicKey, createSecretKey, generateKeyPairSync, type KeyObject, randomBytes } from "node:crypto"

export interface SigningKey {
  readonly alg: "ES256" | "EdDSA"
  readonly kid: string
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
}

/** A secret shared by the nodes: tickets are made and checked by the gateway alone. */
export interface SecretKey {
  readonly alg: "HS256"
  readonly kid: string
  readonly secret: KeyObject
}

export type TicketKey = SigningKey | SecretKey

/** As TIDINGS_AUDIT_KEY_FILE: 256 bits at least, the strength of the other choices. */
export const SECRET_MIN_BYTES = 32

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

/**
 * A secret's kid is a keyed hash of a fixed label, not a thumbprint of the secret itself:
 * a ticket header then says nothing about the key but which one it is.
 */
export const secretKey = (bytes: Uint8Array): SecretKey => {
  if (bytes.length < SECRET_MIN_BYTES) throw new Error(`a ticket secret must hold at least ${SECRET_MIN_BYTES} bytes`)
  const kid = createHmac("sha256", bytes).update("tidings ticket key id").digest("base64url")
  return { alg: "HS256", kid, secret: createSecretKey(bytes) }
}

export const generateSecret = (): SecretKey => secretKey(randomBytes(SECRET_MIN_BYTES))

/** A ticket key file: a PEM private key (ES256 or EdDSA), or else the bytes of an HS256 secret. */
export const ticketKeyFrom = async (file: Buffer): Promise<TicketKey> =>
  file.subarray(0, 64).toString("latin1").includes("-----BEGIN ") ? fromPem(file.toString("utf8")) : secretKey(file)
