// The Sessions contract, for every interpreter: the per-subject cap (Settings.maxSessionsPerSubject),
// places freed with the session's scope, this node's sessions, and revocation (checked with
// registration, and never lost to a registration in flight).
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Exit, type Layer, Result, Scope } from "effect"
import type { SessionRevoked, Unavailable } from "../../src/domain/Errors.ts"
import type { Subject } from "../../src/domain/Principal.ts"
import { type LiveSession, Sessions } from "../../src/services/Sessions.ts"
import { Settings } from "../../src/services/Settings.ts"
import { fresh, freshSubject, until } from "./support.ts"

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

export const suite = (name: string, makeLayer: () => Layer.Layer<Sessions | Settings, unknown>) =>
  describe(`Sessions contract (${name})`, () => {
    const withSessions = <A, E>(
      body: (sessions: Sessions["Service"], cap: number) => Effect.Effect<A, E, Scope.Scope>
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
  })
