// Tickets as compact JWS signed with the gateway's key (ES256 or EdDSA, with `kid`), typed
// `tidings-ticket+jwt` so no other token of ours can pass as one. Checks are strict: pinned
// algorithm, audience, expiry against the caller's clock, every claim shaped as expected.
// Rotation: a node signs with the current key and still accepts tickets of the previous keys
// it is given (by `kid`), so nodes can switch keys one by one within a ticket's 60 s life.
import { Effect, Layer } from "effect"
import { decodeProtectedHeader, errors, jwtVerify, SignJWT } from "jose"
import { TicketRejected } from "../../domain/Errors.ts"
import { TICKET_AUDIENCE } from "../../domain/Limits.ts"
import { userOf } from "../../domain/Principal.ts"
import { type Jti, REF_PATTERN } from "../../domain/Ref.ts"
import type { TicketClaims } from "../../domain/Ticket.ts"
import { TicketSigner } from "../../services/TicketSigner.ts"
import type { SigningKey } from "./Keys.ts"

const TYP = "tidings-ticket+jwt"
const JTI = /^[A-Za-z0-9_-]{16,64}$/

const causeOf = (error: unknown): TicketRejected["cause"] => {
  if (error instanceof errors.JWTExpired) return "expired"
  if (error instanceof errors.JWTClaimValidationFailed && error.claim === "aud") return "audience"
  return "invalid"
}

/** The verifying key a ticket names by `kid`: the current one or a previous one, else none. */
const keyFor = (keys: ReadonlyArray<SigningKey>, ticket: string): SigningKey | undefined => {
  try {
    const kid = decodeProtectedHeader(ticket).kid
    return keys.find((k) => k.kid === kid)
  } catch {
    return undefined
  }
}

export const make = (key: SigningKey, previous: ReadonlyArray<SigningKey> = []) => {
  const verifying = [key, ...previous]
  return TicketSigner.of({
    sign: (claims) =>
      Effect.promise(() =>
        new SignJWT({
          role: claims.user._tag === "Patient" ? "patient" : "clinician",
          ref: claims.user.ref,
          iam: claims.issuedAt,
          sxp: Math.floor(claims.sessionExpiresAt / 1000)
        })
          .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: TYP })
          .setJti(claims.jti)
          .setAudience(TICKET_AUDIENCE)
          .setIssuedAt(Math.floor(claims.issuedAt / 1000))
          .setExpirationTime(Math.floor(claims.expiresAt / 1000))
          .sign(key.privateKey)
      ),
    verify: (ticket, nowMs) => {
      const verifier = keyFor(verifying, ticket)
      if (verifier === undefined) return Effect.fail(new TicketRejected({ cause: "invalid" }))
      return Effect.tryPromise({
        try: () =>
          jwtVerify(ticket, verifier.publicKey, {
            algorithms: [verifier.alg],
            audience: TICKET_AUDIENCE,
            typ: TYP,
            currentDate: new Date(nowMs),
            requiredClaims: ["jti", "iat", "exp"]
          }),
        catch: (error) => new TicketRejected({ cause: causeOf(error) })
      }).pipe(
        Effect.flatMap(({ payload, protectedHeader }): Effect.Effect<TicketClaims, TicketRejected> => {
          const { role, ref, iam, sxp, jti, exp } = payload
          if (
            protectedHeader.kid !== verifier.kid ||
            (role !== "patient" && role !== "clinician") ||
            typeof ref !== "string" || !REF_PATTERN.test(ref) ||
            typeof jti !== "string" || !JTI.test(jti) ||
            typeof iam !== "number" || typeof sxp !== "number" || typeof exp !== "number"
          ) return Effect.fail(new TicketRejected({ cause: "invalid" }))
          return Effect.succeed({
            jti: jti as Jti,
            user: userOf(role, ref),
            issuedAt: iam,
            expiresAt: exp * 1000,
            sessionExpiresAt: sxp * 1000
          })
        })
      )
    }
  })
}

export const layer = (key: SigningKey, previous: ReadonlyArray<SigningKey> = []) =>
  Layer.succeed(TicketSigner, make(key, previous))
