// Tickets as compact JWS signed with the gateway's key (HS256, ES256 or EdDSA, with `kid`), typed
// `tidings-ticket+jwt` so no other token of ours can pass as one. Checks are strict: pinned
// algorithm, audience, expiry against the caller's clock, every claim shaped as expected.
// Rotation: a node signs with the current key and still accepts tickets of the previous keys
// it is given (by `kid`), so nodes can switch keys one by one within a ticket's 60 s life.
import { Effect, Layer } from "effect"
import { createHmac, sign as signBytes, timingSafeEqual, verify as verifyBytes } from "node:crypto"
import { TicketRejected } from "../../domain/Errors.ts"
import { TICKET_AUDIENCE } from "../../domain/Limits.ts"
import { userOf } from "../../domain/Principal.ts"
import { type Jti, REF_PATTERN } from "../../domain/Ref.ts"
import type { TicketClaims } from "../../domain/Ticket.ts"
import { TicketSigner } from "../../services/TicketSigner.ts"
import { jsonObject, partsOf } from "./Jws.ts"
import type { TicketKey } from "./SigningKeys.ts"

const TYP = "tidings-ticket+jwt"
const JTI = /^[A-Za-z0-9_-]{16,64}$/
/** A ticket is a few hundred bytes; anything far larger is not one (and is not parsed). */
const MAX_TICKET_CHARS = 2048

// Tickets are our own tokens, made and checked only here, so they are signed with node:crypto
// directly (RFC 7515 compact JWS): a synchronous sign or verify, without the WebCrypto job
// round trip that jose takes, which cost a tenth of a new session's CPU. Access tokens from
// the issuer, whose format we do not control, still go through jose. An HS256 secret is the
// cheapest of the three (a few µs against 60–190 µs for a signature or its check), and fits a
// token whose only reader is the gateway that made it.
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

const signatureOf = (key: TicketKey, data: Buffer): Buffer => {
  switch (key.alg) {
    case "HS256":
      return createHmac("sha256", key.secret).update(data).digest()
    case "ES256":
      return signBytes("sha256", data, { key: key.privateKey, dsaEncoding: "ieee-p1363" })
    case "EdDSA":
      return signBytes(null, data, key.privateKey)
  }
}

const validSignature = (key: TicketKey, data: Buffer, signature: Buffer): boolean => {
  switch (key.alg) {
    case "HS256":
      // Constant time: a byte-by-byte compare would tell a forger how much of a guess was right.
      return signature.length === 32 && timingSafeEqual(signatureOf(key, data), signature)
    case "ES256":
      return signature.length === 64 && verifyBytes("sha256", data, { key: key.publicKey, dsaEncoding: "ieee-p1363" }, signature)
    case "EdDSA":
      return signature.length === 64 && verifyBytes(null, data, key.publicKey, signature)
  }
}


const rejected = (cause: TicketRejected["cause"]) => Effect.fail(new TicketRejected({ cause }))

export const make = (key: TicketKey, previous: ReadonlyArray<TicketKey> = []) => {
  const verifying = [key, ...previous]
  const header = b64({ alg: key.alg, kid: key.kid, typ: TYP })
  return TicketSigner.of({
    sign: (claims) =>
      Effect.sync(() => {
        const payload = b64({
          role: claims.user._tag === "Patient" ? "patient" : "clinician",
          ref: claims.user.ref,
          iam: claims.issuedAt,
          sxp: Math.floor(claims.sessionExpiresAt / 1000),
          jti: claims.jti,
          aud: TICKET_AUDIENCE,
          iat: Math.floor(claims.issuedAt / 1000),
          exp: Math.floor(claims.expiresAt / 1000)
        })
        const signingInput = `${header}.${payload}`
        return `${signingInput}.${signatureOf(key, Buffer.from(signingInput)).toString("base64url")}`
      }),
    verify: (ticket, nowMs) =>
      Effect.suspend((): Effect.Effect<TicketClaims, TicketRejected> => {
        if (ticket.length > MAX_TICKET_CHARS) return rejected("invalid")
        const parts = partsOf(ticket)
        if (parts === undefined) return rejected("invalid")
        const [headerPart, payloadPart, signaturePart] = parts
        const protectedHeader = jsonObject(headerPart)
        // Exactly our header: the key by kid, its own algorithm, our type, nothing else
        // (no `crit`, no key material or key URL a forger could point elsewhere).
        const verifier = verifying.find((k) => k.kid === protectedHeader?.kid)
        if (
          protectedHeader === undefined || verifier === undefined || protectedHeader.alg !== verifier.alg ||
          protectedHeader.typ !== TYP || Object.keys(protectedHeader).length !== 3
        ) return rejected("invalid")
        if (!validSignature(verifier, Buffer.from(`${headerPart}.${payloadPart}`), Buffer.from(signaturePart, "base64url"))) {
          return rejected("invalid")
        }
        const payload = jsonObject(payloadPart)
        if (payload === undefined) return rejected("invalid")
        const { role, ref, iam, sxp, jti, exp, iat, aud } = payload
        if (typeof exp !== "number" || typeof iat !== "number" || typeof jti !== "string") return rejected("invalid")
        if (aud !== TICKET_AUDIENCE) return rejected("audience")
        // As JWT (RFC 7519 §4.1.4): expired once the current time is at or past exp.
        if (Math.floor(nowMs / 1000) >= exp) return rejected("expired")
        if (
          (role !== "patient" && role !== "clinician") ||
          typeof ref !== "string" || !REF_PATTERN.test(ref) || !JTI.test(jti) ||
          typeof iam !== "number" || typeof sxp !== "number"
        ) return rejected("invalid")
        return Effect.succeed({
          jti: jti as Jti,
          user: userOf(role, ref),
          issuedAt: iam,
          expiresAt: exp * 1000,
          sessionExpiresAt: sxp * 1000
        })
      })
  })
}

export const layer = (key: TicketKey, previous: ReadonlyArray<TicketKey> = []) =>
  Layer.succeed(TicketSigner, make(key, previous))
