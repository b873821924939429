// Specifies the one-time WebSocket ticket (contract §2, §3): issued to users only, signed for
// `tidings-ws`, valid 60 s, consumable exactly once, refused after a revocation, audited without raw refs.
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Result } from "effect"
import { TestClock } from "effect/testing"
import { exportSPKI, SignJWT } from "jose"
import { generateKeyPairSync, randomBytes } from "node:crypto"
import * as SigningKeys from "../../src/interpreters/jwt/SigningKeys.ts"
import * as TicketSigner from "../../src/interpreters/jwt/TicketSigner.ts"
import { MemoryAuditRecords } from "../../src/interpreters/memory/AuditLog.ts"
import type { Principal } from "../../src/domain/Principal.ts"
import type { ClinicianRef, PatientRef, SubjectRef } from "../../src/domain/Ref.ts"
import * as Revoke from "../../src/programs/Revoke.ts"
import * as Tickets from "../../src/programs/Tickets.ts"
import { type AccessGrant, AccessTokens } from "../../src/services/AccessTokens.ts"
import { DevIssuer } from "../../src/services/DevIssuer.ts"
import type { SettingsShape } from "../../src/services/Settings.ts"
import { memoryLayer } from "../support/layers.ts"

const ALICE = "pt_alice_0001"
const BOB = "pt_bob_00002"
const CAROL = "cl_carol_001"

// A ticket key this file knows, so it can sign tickets the gateway never issued.
const ticketKey = await SigningKeys.generate()
const otherKey = await SigningKeys.generate()

const provide = (overrides: Partial<SettingsShape> = {}) =>
  <A, E, R>(self: Effect.Effect<A, E, R>) =>
    self.pipe(Effect.provide(TicketSigner.layer(ticketKey)), Effect.provide(memoryLayer(overrides)))

const patient = (ref: string = ALICE): AccessGrant => ({
  principal: { _tag: "Patient", ref: ref as PatientRef },
  expiresAt: 3_600,
  issuedAt: 0
})
const clinician = (ref: string = CAROL): AccessGrant => ({
  principal: { _tag: "Clinician", ref: ref as ClinicianRef },
  expiresAt: 3_600,
  issuedAt: 0
})

const grantFromDevIssuer = (role: "patient" | "clinician" | "admin" | "service", ref: string) =>
  Effect.gen(function*() {
    const token = yield* (yield* DevIssuer).mint(role, ref)
    return yield* (yield* AccessTokens).verify(token, 0)
  })

const issue = (grant: AccessGrant = patient()) => Effect.map(Tickets.issue(grant), (issued) => issued.ticket)

/** The consume's failure cause, or "ok". */
const outcome = (ticket: string | undefined) =>
  Tickets.consume(ticket).pipe(
    Effect.map(() => "ok"),
    Effect.catchTag("TicketRejected", (error) => Effect.succeed(error.cause))
  )

/** Signs a ticket exactly like the gateway does, with parts a test may change. */
const signTicket = (options: {
  readonly key?: SigningKeys.SigningKey
  readonly kid?: string
  readonly audience?: string
  readonly typ?: string
  readonly jti?: string
  readonly ref?: string
  readonly role?: string
  readonly issuedAtS?: number
  readonly expiresAtS?: number
}) => {
  const key = options.key ?? ticketKey
  const iat = options.issuedAtS ?? 0
  return Effect.promise(() =>
    new SignJWT({ role: options.role ?? "patient", ref: options.ref ?? ALICE, iam: iat * 1000, sxp: 3_600 })
      .setProtectedHeader({ alg: key.alg, kid: options.kid ?? key.kid, typ: options.typ ?? "tidings-ticket+jwt" })
      .setJti(options.jti ?? "jti_0123456789abcdef")
      .setAudience(options.audience ?? "tidings-ws")
      .setIssuedAt(iat)
      .setExpirationTime(options.expiresAtS ?? iat + 60)
      .sign(key.privateKey)
  )
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")
const unb64 = (part: string) => JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as Record<string, unknown>

describe("issueTicket", () => {
  it.effect("issues a compact JWS for tidings-ws that lives 60 s, with a unique jti", () =>
    Effect.gen(function*() {
      const grant = yield* grantFromDevIssuer("patient", ALICE)
      const first = yield* Tickets.issue(grant)
      const second = yield* Tickets.issue(grant)
      expect(first.expiresIn).toBe(60)
      expect(first.ticket.split(".")).toHaveLength(3)
      const [header, payload] = first.ticket.split(".").map((part, i) => (i < 2 ? unb64(part) : {}))
      expect(header).toMatchObject({ typ: "tidings-ticket+jwt", alg: ticketKey.alg, kid: ticketKey.kid })
      expect(payload).toMatchObject({ aud: "tidings-ws", iat: 0, exp: 60, role: "patient", ref: ALICE })
      expect(payload!.jti).toMatch(/^[A-Za-z0-9_-]{16,64}$/)
      expect(unb64(second.ticket.split(".")[1]!).jti).not.toBe(payload!.jti)
    }).pipe(provide()))

  it.effect("issues tickets to clinicians", () =>
    Effect.gen(function*() {
      const ticket = yield* issue(yield* grantFromDevIssuer("clinician", CAROL))
      const claims = yield* Tickets.consume(ticket)
      expect(claims.user).toEqual({ _tag: "Clinician", ref: CAROL })
    }).pipe(provide()))

  it.effect("refuses services and admins (Forbidden)", () =>
    Effect.gen(function*() {
      for (const grant of [yield* grantFromDevIssuer("service", "svc_backend_01"), yield* grantFromDevIssuer("admin", "ad_root_0001")]) {
        const error = yield* Effect.flip(Tickets.issue(grant))
        expect(error._tag).toBe("Forbidden")
      }
      const records = (yield* (yield* MemoryAuditRecords).all)
      expect(records.filter((r) => r.event === "ticket.issued")).toHaveLength(0)
    }).pipe(provide()))

  it.effect("limits how many tickets one user may get", () =>
    Effect.gen(function*() {
      for (let i = 0; i < 30; i++) yield* issue()
      const error = yield* Effect.flip(issue())
      expect(error._tag).toBe("RateLimited")
      const limited = (yield* (yield* MemoryAuditRecords).all).filter((r) => r.event === "rate.limited")
      expect(limited).toMatchObject([{ cause: "ticket", result: "refused" }])
      expect(JSON.stringify(limited)).not.toContain(ALICE)
      // Another user is not affected.
      yield* issue(patient(BOB))
      // The bucket refills with time.
      yield* TestClock.adjust(Duration.seconds(2))
      yield* issue()
    }).pipe(provide()))
})

describe("consumeTicket", () => {
  it.effect("accepts a fresh ticket once and yields its user", () =>
    Effect.gen(function*() {
      const ticket = yield* issue(yield* grantFromDevIssuer("patient", ALICE))
      const claims = yield* Tickets.consume(ticket)
      expect(claims.user).toEqual({ _tag: "Patient", ref: ALICE })
      expect(claims.issuedAt).toBe(0)
      expect(claims.expiresAt).toBe(60_000)
    }).pipe(provide()))

  it.effect("refuses a ticket used twice", () =>
    Effect.gen(function*() {
      const ticket = yield* issue()
      expect(yield* outcome(ticket)).toBe("ok")
      expect(yield* outcome(ticket)).toBe("used")
      expect(yield* outcome(ticket)).toBe("used")
    }).pipe(provide()))

  it.effect("accepts a ticket at 59 s and refuses one at exactly 60 s as expired", () =>
    Effect.gen(function*() {
      const early = yield* issue()
      const late = yield* issue()
      yield* TestClock.adjust(Duration.seconds(59))
      expect(yield* outcome(early)).toBe("ok")
      yield* TestClock.adjust(Duration.seconds(1))
      expect(yield* outcome(late)).toBe("expired")
    }).pipe(provide()))

  it.effect("refuses a ticket long after it expired", () =>
    Effect.gen(function*() {
      const ticket = yield* issue()
      yield* TestClock.adjust(Duration.hours(2))
      expect(yield* outcome(ticket)).toBe("expired")
    }).pipe(provide()))

  it.effect("lets exactly one of 100 concurrent consumes of one ticket succeed", () =>
    Effect.gen(function*() {
      const ticket = yield* issue()
      const results = yield* Effect.all(
        Array.from({ length: 100 }, () => Effect.result(Tickets.consume(ticket))),
        { concurrency: "unbounded" }
      )
      expect(results.filter(Result.isSuccess)).toHaveLength(1)
      const failures = results.filter(Result.isFailure).map((r) => r.failure)
      expect(failures).toHaveLength(99)
      for (const failure of failures) expect(failure).toMatchObject({ _tag: "TicketRejected", cause: "used" })
    }).pipe(provide()))

  it.effect("refuses a missing ticket", () =>
    Effect.gen(function*() {
      expect(yield* outcome(undefined)).toBe("missing")
    }).pipe(provide()))

  it.effect("refuses a ticket for another audience", () =>
    Effect.gen(function*() {
      expect(yield* outcome(yield* signTicket({ audience: "tidings" }))).toBe("audience")
      expect(yield* outcome(yield* signTicket({ audience: "someone-else" }))).toBe("audience")
    }).pipe(provide()))

  it.effect("refuses a correctly signed ticket whose jti was never issued", () =>
    Effect.gen(function*() {
      expect(yield* outcome(yield* signTicket({}))).toBe("used")
    }).pipe(provide()))

  it.effect("refuses a ticket whose payload was tampered with", () =>
    Effect.gen(function*() {
      const ticket = yield* issue()
      const [header, payload, signature] = ticket.split(".") as [string, string, string]
      const claims = unb64(payload)
      for (const change of [{ ref: BOB }, { role: "clinician" }, { exp: 999_999 }, { aud: "tidings-ws", extra: 1 }]) {
        expect(yield* outcome(`${header}.${b64({ ...claims, ...change })}.${signature}`)).toBe("invalid")
      }
      // The tampering attempts did not burn the real ticket.
      expect(yield* outcome(ticket)).toBe("ok")
    }).pipe(provide()))

  it.effect("refuses a ticket with a broken signature", () =>
    Effect.gen(function*() {
      const ticket = yield* issue()
      const [header, payload, signature] = ticket.split(".") as [string, string, string]
      const flipped = (signature[5] === "A" ? "B" : "A")
      const broken = `${header}.${payload}.${signature.slice(0, 5)}${flipped}${signature.slice(6)}`
      expect(yield* outcome(broken)).toBe("invalid")
      expect(yield* outcome(`${header}.${payload}.`)).toBe("invalid")
      expect(yield* outcome(`${header}.${payload}`)).toBe("invalid")
    }).pipe(provide()))

  it.effect("refuses forged tickets: another key, alg none, another typ, an access token", () =>
    Effect.gen(function*() {
      expect(yield* outcome(yield* signTicket({ key: otherKey, kid: ticketKey.kid }))).toBe("invalid")
      expect(yield* outcome(yield* signTicket({ key: otherKey }))).toBe("invalid")
      expect(yield* outcome(yield* signTicket({ typ: "JWT" }))).toBe("invalid")
      expect(yield* outcome(yield* signTicket({ kid: "another-kid" }))).toBe("invalid")
      expect(yield* outcome(yield* signTicket({ role: "admin" }))).toBe("invalid")
      expect(yield* outcome(yield* signTicket({ ref: "short" }))).toBe("invalid")
      expect(yield* outcome(yield* signTicket({ jti: "short" }))).toBe("invalid")
      const none = `${b64({ alg: "none", typ: "tidings-ticket+jwt", kid: ticketKey.kid })}.${
        b64({ role: "patient", ref: ALICE, iam: 0, sxp: 3600, jti: "jti_0123456789abcdef", aud: "tidings-ws", iat: 0, exp: 60 })
      }.`
      expect(yield* outcome(none)).toBe("invalid")
      const accessToken = yield* (yield* DevIssuer).mint("patient", ALICE)
      expect(yield* outcome(accessToken)).toBe("invalid")
      for (const garbage of ["", "x", "a.b.c", "....", "x".repeat(100_000)]) expect(yield* outcome(garbage)).toBe("invalid")
    }).pipe(provide()))

  it.effect("refuses a ticket issued before its subject's revocation and accepts one issued after", () =>
    Effect.gen(function*() {
      const admin = yield* grantFromDevIssuer("admin", "ad_root_0001")
      const before = yield* issue()
      const bobs = yield* issue(patient(BOB))
      yield* TestClock.adjust(Duration.seconds(1))
      yield* Revoke.revokeSubject(admin.principal, ALICE as SubjectRef)
      yield* TestClock.adjust(Duration.seconds(1))
      // The access token behind `before` predates the revocation: it gets no new ticket.
      const refused = yield* Effect.flip(Tickets.issue(patient()))
      expect(refused._tag).toBe("Unauthenticated")
      const after = yield* issue({ ...patient(), issuedAt: 2 })
      expect(yield* outcome(before)).toBe("revoked")
      expect(yield* outcome(after)).toBe("ok")
      expect(yield* outcome(bobs)).toBe("ok")
    }).pipe(provide()))

  it.effect("lets only an admin with sessions:revoke revoke", () =>
    Effect.gen(function*() {
      const notAllowed: ReadonlyArray<Principal> = [
        (yield* grantFromDevIssuer("service", "svc_backend_01")).principal,
        patient().principal,
        { _tag: "Admin", ref: "ad_root_0001" as SubjectRef, scopes: [] }
      ]
      const ticket = yield* issue()
      yield* TestClock.adjust(Duration.seconds(1))
      for (const principal of notAllowed) {
        const error = yield* Effect.flip(Revoke.revokeSubject(principal, ALICE as SubjectRef))
        expect(error._tag).toBe("Forbidden")
      }
      expect(yield* outcome(ticket)).toBe("ok")
    }).pipe(provide()))

  it.effect("audits issue, consume and rejection without the raw ref", () =>
    Effect.gen(function*() {
      const ticket = yield* issue()
      yield* Tickets.consume(ticket, "https://app.example")
      yield* outcome(ticket)
      yield* outcome(undefined)
      yield* outcome(yield* issue(clinician()))
      const records = (yield* (yield* MemoryAuditRecords).all)
      const events = records.map((r) => r.event)
      expect(events.filter((e) => e === "ticket.issued")).toHaveLength(2)
      expect(events.filter((e) => e === "ticket.consumed")).toHaveLength(2)
      expect(events.filter((e) => e === "ticket.rejected")).toHaveLength(2)
      const jti = unb64(ticket.split(".")[1]!).jti
      expect(records.find((r) => r.event === "ticket.issued")).toMatchObject({ jti, result: "ok" })
      expect(records.find((r) => r.event === "ticket.consumed")).toMatchObject({
        jti,
        result: "ok",
        origin: "https://app.example"
      })
      expect(records.filter((r) => r.event === "ticket.rejected").map((r) => r.cause)).toEqual(["used", "missing"])
      expect(records.find((r) => r.event === "ticket.issued")!.subject).toMatch(/^[0-9a-f]{32}$/)
      const json = JSON.stringify(records)
      expect(json).not.toContain(ALICE)
      expect(json).not.toContain(CAROL)
      expect(json).not.toContain(ticket)
    }).pipe(provide()))
})

describe("HS256 ticket secrets", () => {
  const secret = SigningKeys.secretKey(randomBytes(32))
  const withSecret = <A, E, R>(self: Effect.Effect<A, E, R>) =>
    self.pipe(Effect.provide(TicketSigner.layer(secret, [ticketKey])), Effect.provide(memoryLayer()))
  const signHs = (key: Uint8Array, kid: string) =>
    Effect.promise(() =>
      new SignJWT({ role: "patient", ref: ALICE, iam: 0, sxp: 3_600 })
        .setProtectedHeader({ alg: "HS256", kid, typ: "tidings-ticket+jwt" })
        .setJti("jti_0123456789abcdef").setAudience("tidings-ws").setIssuedAt(0).setExpirationTime(60)
        .sign(key)
    )

  it.effect("issues HS256 tickets that are consumed once", () =>
    Effect.gen(function*() {
      const ticket = yield* issue()
      const header = unb64(ticket.split(".")[0]!)
      expect(header).toEqual({ alg: "HS256", kid: secret.kid, typ: "tidings-ticket+jwt" })
      // The kid names the key without being derived from the secret alone.
      expect(secret.kid).not.toContain(secret.secret.export().toString("base64url"))
      expect(yield* outcome(ticket)).toBe("ok")
      expect(yield* outcome(ticket)).toBe("used")
    }).pipe(withSecret))

  it.effect("refuses a tampered HS256 ticket, one made with another secret, and a truncated mac", () =>
    Effect.gen(function*() {
      const ticket = yield* issue()
      const [header, payload, signature] = ticket.split(".") as [string, string, string]
      expect(yield* outcome(`${header}.${b64({ ...unb64(payload), ref: BOB })}.${signature}`)).toBe("invalid")
      expect(yield* outcome(`${header}.${payload}.${signature.slice(0, 20)}`)).toBe("invalid")
      expect(yield* outcome(yield* signHs(randomBytes(32), secret.kid))).toBe("invalid")
      // With the right secret the mac passes and only the store refuses (that jti was never
      // issued): the refusals above came from the mac, not from the ticket's shape.
      expect(yield* outcome(yield* signHs(secret.secret.export(), secret.kid))).toBe("used")
      expect(yield* outcome(ticket)).toBe("ok")
    }).pipe(withSecret))

  it.effect("refuses algorithm confusion: HS256 keyed with a public key, or an asymmetric alg on the secret's kid", () =>
    Effect.gen(function*() {
      // The classic attack: the verifier's public key (public knowledge) used as an HMAC secret.
      const publicPem = yield* Effect.promise(() => exportSPKI(ticketKey.publicKey))
      expect(yield* outcome(yield* signHs(Buffer.from(publicPem), ticketKey.kid))).toBe("invalid")
      expect(yield* outcome(yield* signTicket({ kid: secret.kid }))).toBe("invalid")
      // The previous (asymmetric) key is still honoured under its own alg (past the signature
      // check; the jti was never issued, so the store refuses it).
      expect(yield* outcome(yield* signTicket({}))).toBe("used")
    }).pipe(withSecret))

  it("reads a key file: PEM is an asymmetric key, other bytes a secret of at least 32 bytes", async () => {
    const pem = generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" })
    expect((await SigningKeys.ticketKeyFrom(Buffer.from(pem))).alg).toBe("EdDSA")
    const bytes = randomBytes(32)
    const fromFile = await SigningKeys.ticketKeyFrom(bytes)
    expect(fromFile).toMatchObject({ alg: "HS256", kid: SigningKeys.secretKey(bytes).kid })
    await expect(SigningKeys.ticketKeyFrom(randomBytes(31))).rejects.toThrow(/at least 32 bytes/)
    expect(SigningKeys.generateSecret().kid).not.toBe(SigningKeys.generateSecret().kid)
  })
})

describe("ticket key rotation", () => {
  const at = (current: SigningKeys.TicketKey, previous: ReadonlyArray<SigningKeys.TicketKey> = []) =>
    <A, E, R>(self: Effect.Effect<A, E, R>) => self.pipe(Effect.provide(TicketSigner.layer(current, previous)))

  it.effect("accepts a ticket signed with the previous key during the overlap, and refuses it after", () =>
    Effect.gen(function*() {
      const [oldKey, newKey] = [yield* Effect.promise(SigningKeys.generate), yield* Effect.promise(SigningKeys.generate)]
      expect(oldKey.kid).not.toBe(newKey.kid)
      // Issued by a node still on the old key.
      const before = yield* Tickets.issue(patient()).pipe(at(oldKey))
      const alsoBefore = yield* Tickets.issue(patient(BOB)).pipe(at(oldKey))
      // A node already switched, still given the old key as previous: accepts it.
      const overlap = yield* Tickets.consume(before.ticket).pipe(at(newKey, [oldKey]))
      expect(overlap.user.ref).toBe(ALICE)
      // A node that dropped the old key: refuses it.
      const after = yield* Effect.flip(Tickets.consume(alsoBefore.ticket).pipe(at(newKey)))
      expect(after).toMatchObject({ _tag: "TicketRejected", cause: "invalid" })
      // New tickets are signed with the new key and carry its kid.
      const fresh = yield* Tickets.issue(patient()).pipe(at(newKey, [oldKey]))
      const header = JSON.parse(Buffer.from(fresh.ticket.split(".")[0]!, "base64url").toString())
      expect(header.kid).toBe(newKey.kid)
    }).pipe(Effect.provide(memoryLayer())))

  it.effect("rotates from an asymmetric key to a secret", () =>
    Effect.gen(function*() {
      const secret = SigningKeys.generateSecret()
      const before = yield* Tickets.issue(patient()).pipe(at(ticketKey))
      expect((yield* Tickets.consume(before.ticket).pipe(at(secret, [ticketKey]))).user.ref).toBe(ALICE)
      const fresh = yield* Tickets.issue(patient()).pipe(at(secret, [ticketKey]))
      expect((yield* Tickets.consume(fresh.ticket).pipe(at(secret))).user.ref).toBe(ALICE)
    }).pipe(Effect.provide(memoryLayer())))
})
