// The Sessions contract, for every interpreter: the per-subject cap (Settings.maxSessionsPerSubject),
// places freed with the session's scope, this node's sessions, revocation (checked with
// registration, and never lost to a registration in flight), and opening with a ticket.
import { describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Exit, type Layer, Result, Scope } from "effect"
import type { SessionRevoked, Unavailable } from "../../src/domain/Errors.ts"
import type { Subject } from "../../src/domain/Principal.ts"
import { type LiveSession, Sessions } from "../../src/services/Sessions.ts"
import type { RateRule } from "../../src/services/RateLimiter.ts"
import { Settings } from "../../src/services/Settings.ts"
import { TicketStore } from "../../src/services/TicketStore.ts"
import { fresh, freshSubject, jti, until } from "./support.ts"

/** A session that records how it was ended. */
interface Probe {
  readonly session: LiveSession
  readonly ended: Array<SessionRevoked | Unavailable>
}

/** A session of `subject` opened with a ticket issued at `issuedAt` (ms). */
const probe = (subject: Subject, issuedAt = 0): Probe => {
  const ended: Array<SessionRevoked | Unavailable> = []
  return {
    ended,
    session: {
      id: fresh("ses"),
      subject,
      openedAt: issuedAt,
      issuedAt,
      end: (reason) => void ended.push(reason),
      reauthorize: () => undefined,
      reauthorizeAll: () => undefined,
      recheckCare: () => undefined
    }
  }
}

const ids = (sessions: ReadonlyArray<LiveSession>) => sessions.map((s) => s.id).sort()

/** A connect limit none of these tests reaches unless it means to. */
const CONNECTS: RateRule = { scope: "connect", limit: 100, windowMs: 60_000 }

export const suite = (name: string, makeLayer: () => Layer.Layer<Sessions | Settings | TicketStore, unknown>) =>
  describe(`Sessions contract (${name})`, () => {
    const withSessions = <A, E>(
      body: (sessions: Sessions["Service"], cap: number) => Effect.Effect<A, E, Scope.Scope | TicketStore>
    ) =>
      Effect.gen(function*() {
        const { maxSessionsPerSubject } = yield* Settings
        expect(maxSessionsPerSubject).toBeGreaterThanOrEqual(2)
        return yield* Effect.scoped(body(yield* Sessions, maxSessionsPerSubject))
      }).pipe(Effect.provide(makeLayer()))

    /** Registers `probe` in a scope of its own (closed with the test's at the latest), returned so the test can end it. */
    const hold = (sessions: Sessions["Service"], p: Probe) =>
      Effect.gen(function*() {
        const scope = yield* Scope.fork(yield* Scope.Scope)
        const release = yield* sessions.register(p.session)
        yield* Scope.addFinalizer(scope, release)
        return scope
      })

    /** A ticket of the probe's subject, put in the store: what `open` takes. */
    const ticketOf = (p: Probe) =>
      Effect.gen(function*() {
        const id = jti()
        yield* (yield* TicketStore).put(p.session.subject, id, Duration.seconds(60))
        return id
      })

    /** Opens `p` with a fresh ticket of its own (released with the test's scope), or how it was refused. */
    const open = (sessions: Sessions["Service"], p: Probe, connect = CONNECTS) =>
      Effect.gen(function*() {
        const release = yield* sessions.open(p.session, yield* ticketOf(p), connect)
        yield* Effect.addFinalizer(() => release)
      })

    /** Registers and releases at once. */
    const register = (sessions: Sessions["Service"], p: Probe) => Effect.flatMap(sessions.register(p.session), (release) => release)

    it.live("registers up to maxSessionsPerSubject sessions of a subject, then refuses with TooManySessions", () =>
      withSessions((sessions, cap) =>
        Effect.gen(function*() {
          const subject = freshSubject()
          const held = Array.from({ length: cap }, () => probe(subject))
          for (const p of held) yield* hold(sessions, p)
          const refused = yield* Effect.flip(register(sessions, probe(subject)))
          expect(refused._tag).toBe("TooManySessions")
          expect(ids(sessions.local(subject))).toEqual(ids(held.map((p) => p.session)))
        })
      ))

    it.live("closing a session's scope frees its place for another", () =>
      withSessions((sessions, cap) =>
        Effect.gen(function*() {
          const subject = freshSubject()
          const held = Array.from({ length: cap }, () => probe(subject))
          const scopes = yield* Effect.forEach(held, (p) => hold(sessions, p))
          yield* Scope.close(scopes[0]!, Exit.void)
          const next = probe(subject)
          yield* hold(sessions, next)
          expect(ids(sessions.local(subject))).toEqual(ids([...held.slice(1), next].map((p) => p.session)))
          expect((yield* Effect.flip(register(sessions, probe(subject))))._tag).toBe("TooManySessions")
        })
      ))

    it.live("the cap counts each subject's sessions separately", () =>
      withSessions((sessions, cap) =>
        Effect.gen(function*() {
          const [full, other] = [freshSubject(), freshSubject()]
          for (let i = 0; i < cap; i++) yield* hold(sessions, probe(full))
          const others = Array.from({ length: cap }, () => probe(other))
          for (const p of others) yield* hold(sessions, p)
          expect(ids(sessions.local(other))).toEqual(ids(others.map((p) => p.session)))
        })
      ))

    it.live("local(subject) lists this node's open sessions of that subject only", () =>
      withSessions((sessions) =>
        Effect.gen(function*() {
          const [subject, other] = [freshSubject(), freshSubject()]
          expect(sessions.local(subject)).toEqual([])
          const mine = probe(subject)
          const scope = yield* hold(sessions, mine)
          yield* hold(sessions, probe(other))
          expect(sessions.local(subject)).toEqual([mine.session])
          yield* Scope.close(scope, Exit.void)
          expect(sessions.local(subject)).toEqual([])
        })
      ))

    it.live("revoke ends every session of the subject with SessionRevoked, and no other subject's", () =>
      withSessions((sessions) =>
        Effect.gen(function*() {
          const [subject, bystander, witness] = [freshSubject(), freshSubject(), freshSubject()]
          const revoked = [probe(subject), probe(subject)]
          const spared = probe(bystander)
          const last = probe(witness)
          for (const p of [...revoked, spared, last]) yield* hold(sessions, p)
          const at = yield* Clock.currentTimeMillis
          yield* sessions.revoke(subject, at)
          // Revoked after `subject`: once its session has ended, the bystander's would have too.
          yield* sessions.revoke(witness, at)
          yield* until(() => revoked.every((p) => p.ended.length > 0) && last.ended.length > 0, "the revoked sessions end")
          for (const p of revoked) expect(p.ended.map((reason) => reason._tag)).toEqual(["SessionRevoked"])
          expect(spared.ended).toEqual([])
        })
      ))

    it.live("revokedAt answers the time of the subject's last revocation", () =>
      withSessions((sessions) =>
        Effect.gen(function*() {
          const [subject, other] = [freshSubject(), freshSubject()]
          const now = yield* Clock.currentTimeMillis
          yield* sessions.revoke(subject, now - 5_000)
          expect(yield* sessions.revokedAt(subject)).toBe(now - 5_000)
          yield* sessions.revoke(subject, now)
          expect(yield* sessions.revokedAt(subject)).toBe(now)
          expect(yield* sessions.revokedAt(other)).toBeUndefined()
        })
      ))

    it.live("register refuses with SessionRevoked a session whose ticket was issued at or before the subject's last revocation", () =>
      withSessions((sessions) =>
        Effect.gen(function*() {
          const [subject, other] = [freshSubject(), freshSubject()]
          const at = yield* Clock.currentTimeMillis
          yield* sessions.revoke(subject, at)
          for (const issuedAt of [at - 1_000, at]) {
            expect((yield* Effect.flip(register(sessions, probe(subject, issuedAt))))._tag).toBe("SessionRevoked")
          }
          expect(sessions.local(subject)).toEqual([])
          // A ticket issued after the revocation opens a session, and other subjects are untouched.
          const after = probe(subject, at + 1)
          yield* hold(sessions, after)
          yield* hold(sessions, probe(other, at - 1_000))
          expect(sessions.local(subject)).toEqual([after.session])
        })
      ))

    it.live("a revocation racing registrations ends every session it covers: each is refused or ended, none survives", () =>
      withSessions((sessions) =>
        Effect.gen(function*() {
          const at = yield* Clock.currentTimeMillis
          const outcomes = yield* Effect.forEach(Array.from({ length: 20 }), () =>
            Effect.gen(function*() {
              const subject = freshSubject()
              const p = probe(subject, at - 1)
              const [registered] = yield* Effect.all([Effect.result(sessions.register(p.session)), sessions.revoke(subject, at)], {
                concurrency: "unbounded"
              })
              if (Result.isFailure(registered)) return registered.failure._tag
              yield* until(() => p.ended.length > 0, "the registered session is ended")
              return p.ended.map((reason) => reason._tag).join()
            }))
          expect(outcomes.filter((o) => o !== "SessionRevoked")).toEqual([])
        })
      ))

    it.live("revokedAt of a subject never revoked is undefined", () =>
      withSessions((sessions) =>
        Effect.gen(function*() {
          expect(yield* sessions.revokedAt(freshSubject())).toBeUndefined()
        })
      ))

    it.live("open takes the ticket once: the same jti again is refused as used, and the store no longer has it", () =>
      withSessions((sessions) =>
        Effect.gen(function*() {
          const subject = freshSubject()
          const [first, second] = [probe(subject), probe(subject)]
          const id = yield* ticketOf(first)
          const release = yield* sessions.open(first.session, id, CONNECTS)
          yield* Effect.addFinalizer(() => release)
          expect(ids(sessions.local(subject))).toEqual([first.session.id])
          expect(yield* Effect.flip(sessions.open(second.session, id, CONNECTS))).toMatchObject({ _tag: "TicketRejected", cause: "used" })
          expect(yield* (yield* TicketStore).take(subject, id)).toBe(false)
          expect(ids(sessions.local(subject))).toEqual([first.session.id])
        })
      ))

    it.live("of 20 concurrent opens with one jti, exactly one opens and the others are refused as used", () =>
      withSessions((sessions) =>
        Effect.gen(function*() {
          const subject = freshSubject()
          const id = yield* ticketOf(probe(subject))
          const outcomes = yield* Effect.forEach(Array.from({ length: 20 }), () =>
            Effect.map(Effect.result(sessions.open(probe(subject).session, id, CONNECTS)), (r) =>
              Result.isSuccess(r) ? "opened" : `${r.failure._tag}:${"cause" in r.failure ? r.failure.cause : ""}`), { concurrency: "unbounded" })
          expect(outcomes.filter((o) => o === "opened")).toHaveLength(1)
          expect(outcomes.filter((o) => o !== "opened")).toEqual(Array.from({ length: 19 }, () => "TicketRejected:used"))
        })
      ))

    it.live("open refuses as revoked a ticket issued at or before the subject's last revocation, and takes it all the same", () =>
      withSessions((sessions) =>
        Effect.gen(function*() {
          const subject = freshSubject()
          const at = yield* Clock.currentTimeMillis
          yield* sessions.revoke(subject, at)
          for (const issuedAt of [at - 1_000, at]) {
            const p = probe(subject, issuedAt)
            const id = yield* ticketOf(p)
            expect(yield* Effect.flip(sessions.open(p.session, id, CONNECTS))).toMatchObject({ _tag: "TicketRejected", cause: "revoked" })
            expect(yield* (yield* TicketStore).take(subject, id)).toBe(false)
          }
          expect(sessions.local(subject)).toEqual([])
          yield* open(sessions, probe(subject, at + 1))
          expect(sessions.local(subject)).toHaveLength(1)
        })
      ))

    it.live("open takes a token from the subject's connect bucket: past its limit RateLimited, per subject, the ticket taken", () =>
      withSessions((sessions) =>
        Effect.gen(function*() {
          const [subject, other] = [freshSubject(), freshSubject()]
          const rule: RateRule = { scope: "connect", limit: 1, windowMs: 60_000 }
          yield* open(sessions, probe(subject), rule)
          const p = probe(subject)
          const id = yield* ticketOf(p)
          const limited = yield* Effect.flip(sessions.open(p.session, id, rule))
          expect(limited).toMatchObject({ _tag: "RateLimited", scope: "connect" })
          expect(limited._tag === "RateLimited" && limited.retryAfterMs > 0).toBe(true)
          expect(yield* (yield* TicketStore).take(subject, id)).toBe(false)
          expect(sessions.local(subject)).toHaveLength(1)
          yield* open(sessions, probe(other), rule)
        })
      ))

    it.live("open holds the cap with register's sessions: past maxSessionsPerSubject TooManySessions", () =>
      withSessions((sessions, cap) =>
        Effect.gen(function*() {
          const subject = freshSubject()
          yield* hold(sessions, probe(subject))
          for (let i = 1; i < cap; i++) yield* open(sessions, probe(subject))
          expect(yield* Effect.flip(open(sessions, probe(subject)))).toMatchObject({ _tag: "TooManySessions" })
          expect(sessions.local(subject)).toHaveLength(cap)
        })
      ))
  })
