// The Redis session registry's periodic reconciliation in real time, with a cycle short enough
// to watch (every 200 ms; checks may fail for 600 ms): a revocation whose announcement never
// arrived still ends the session, care-based subscriptions are re-checked, and a check that
// cannot be made never counts as a pass (the session ends with Unavailable, never before the
// grace runs out).
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { Redis as IORedis } from "ioredis"
import { Unavailable } from "../../src/domain/Errors.ts"
import * as Client from "../../src/interpreters/redis/Client.ts"
import * as Control from "../../src/interpreters/redis/Control.ts"
import { testDataKeysLayer, testKeys } from "../support/data-key.ts"
import * as RedisSessions from "../../src/interpreters/redis/Sessions.ts"
import { type LiveSession, Sessions } from "../../src/services/Sessions.ts"
import * as Settings from "../../src/services/Settings.ts"
import { sessionsNode, useRedisTarget } from "../support/redis-target.ts"
import { gatewayUser, hasRedisServer, skipReason, startRedis, type TestRedis } from "../support/redis.ts"
import { fresh, freshSubject, until } from "./support.ts"

const LEASE = { leaseMs: 5_000, refreshMs: 200, graceMs: 600 }

interface Probe {
  readonly session: LiveSession
  readonly ended: Array<{ readonly tag: string; readonly afterMs: number }>
  /** Care re-checks asked of it so far. */
  careChecks: number
}

/** A session whose ticket was issued `issuedAt`; `care` answers its care re-checks, if it has any. */
const probe = (subject: LiveSession["subject"], issuedAt: number, care?: () => Effect.Effect<void, Unavailable>): Probe => {
  const started = Date.now()
  const p: Probe = {
    ended: [],
    careChecks: 0,
    session: {
      id: fresh("ses"),
      subject,
      openedAt: issuedAt,
      issuedAt,
      end: (reason) => void p.ended.push({ tag: reason._tag, afterMs: Date.now() - started }),
      reauthorize: () => undefined,
      reauthorizeAll: () => undefined,
      recheckCare: () => {
        if (care === undefined) return undefined
        p.careChecks += 1
        return care()
      }
    }
  }
  return p
}

const targets = ["single", "cluster"] as const

describe.skipIf(!hasRedisServer).each(targets)(`Redis session reconciliation (%s)${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, (kind) => {
  const redis = useRedisTarget(kind)

  const node = () => sessionsNode(redis.target, LEASE)

  it.live("ends a session with SessionRevoked within a cycle of a revocation whose announcement never came", () =>
    Effect.gen(function*() {
      const sessions = yield* Sessions
      const [subject, bystander] = [freshSubject(), freshSubject()]
      const issuedAt = Date.now()
      const [revoked, spared] = [probe(subject, issuedAt), probe(bystander, issuedAt)]
      yield* sessions.register(revoked.session)
      yield* sessions.register(spared.session)
      // Stored as `revoke` stores it, but never published: as if this node missed it.
      yield* Effect.promise(() => redis.admin.set(testKeys.subject(subject).revoked, String(issuedAt + 1), "EX", 60))
      yield* until(() => revoked.ended.length > 0, "the revoked session is ended", LEASE.refreshMs * 5)
      expect(revoked.ended.map((e) => e.tag)).toEqual(["SessionRevoked"])
      expect(spared.ended).toEqual([])
    }).pipe(Effect.provide(node())))

  it.live("goes on repairing missed revocations while a session's check dies each cycle, and ends that session once it has failed for graceMs", () =>
    Effect.gen(function*() {
      const sessions = yield* Sessions
      const issuedAt = Date.now()
      // Its care re-check throws (a defect, not a failed check), in every cycle.
      const broken = probe(freshSubject("clinician"), issuedAt, () => Effect.die(new Error("a bug in a re-check")))
      yield* sessions.register(broken.session)
      yield* until(() => broken.careChecks >= 2, "two cycles ran over the broken session", LEASE.refreshMs * 10)
      const subject = freshSubject()
      const revoked = probe(subject, issuedAt)
      yield* sessions.register(revoked.session)
      yield* Effect.promise(() => redis.admin.set(testKeys.subject(subject).revoked, String(issuedAt + 1), "EX", 60))
      yield* until(() => revoked.ended.length > 0, "the revoked session is ended", LEASE.refreshMs * 10)
      expect(revoked.ended.map((e) => e.tag)).toEqual(["SessionRevoked"])
      yield* until(() => broken.ended.length > 0, "the broken session is ended", LEASE.graceMs + LEASE.refreshMs * 10)
      expect(broken.ended.map((e) => e.tag)).toEqual(["Unavailable"])
    }).pipe(Effect.provide(node())))

  it.live("re-checks care each cycle, keeps a session whose checks pass, and ends one whose checks keep failing with Unavailable once they have failed for graceMs", () =>
    Effect.gen(function*() {
      const sessions = yield* Sessions
      const now = Date.now()
      const passing = probe(freshSubject("clinician"), now, () => Effect.void)
      const failing = probe(freshSubject("clinician"), now, () => Effect.fail(new Unavailable({ service: "care-relationships" })))
      const patient = probe(freshSubject(), now)
      for (const p of [passing, failing, patient]) yield* sessions.register(p.session)
      yield* until(() => failing.ended.length > 0, "the session whose checks fail is ended", LEASE.graceMs + LEASE.refreshMs * 5)
      expect(failing.ended.map((e) => e.tag)).toEqual(["Unavailable"])
      expect(failing.ended[0]!.afterMs).toBeGreaterThanOrEqual(LEASE.graceMs)
      expect(failing.careChecks).toBeGreaterThanOrEqual(3)
      expect(passing.careChecks).toBeGreaterThanOrEqual(3)
      expect([passing.ended, patient.ended]).toEqual([[], []])
    }).pipe(Effect.provide(node())))
})

// ACL users are set per server: shown on a single Redis (the renewal script is the same on a cluster).
describe.skipIf(!hasRedisServer)(`Redis session reconciliation, failing checks${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  let redis: TestRedis
  let admin: IORedis
  beforeAll(async () => {
    redis = await startRedis()
    admin = new IORedis(redis.adminUrl)
  })
  afterAll(async () => {
    admin?.disconnect()
    await redis?.stop()
  })

  it.live("never takes a revocation check it could not make as a pass: the node's Redis user may not GET, the session ends with Unavailable after graceMs", () =>
    Effect.gen(function*() {
      yield* Effect.promise(() => admin.call("ACL", "SETUSER", ...gatewayUser("node", "pw_node")))
      const url = `redis://node:pw_node@127.0.0.1:${redis.port}`
      yield* Effect.gen(function*() {
        const sessions = yield* Sessions
        const p = probe(freshSubject(), Date.now())
        yield* sessions.register(p.session)
        yield* Effect.promise(() => admin.call("ACL", "SETUSER", "node", "-get"))
        yield* until(() => p.ended.length > 0, "the unchecked session is ended", LEASE.graceMs + LEASE.refreshMs * 5)
        expect(p.ended.map((e) => e.tag)).toEqual(["Unavailable"])
        expect(p.ended[0]!.afterMs).toBeGreaterThanOrEqual(LEASE.graceMs)
      }).pipe(
        Effect.provide(RedisSessions.layerWith(LEASE).pipe(
          Layer.provide(Layer.merge(Control.layer, testDataKeysLayer)),
          Layer.provideMerge(Client.layer({ _tag: "Single", url: Redacted.make(url) })),
          Layer.provideMerge(Settings.layer({ maxSessionsPerSubject: 2 }))
        )),
        Effect.ensuring(Effect.promise(() => admin.call("ACL", "SETUSER", "node", "+get")))
      )
    }))
})
