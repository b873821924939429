// The Redis interpreters through an outage (real time, bounded waits): not ready and failing
// with Unavailable while Redis is away, ready again when it returns, live subscriptions resumed.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Layer, Redacted, Result } from "effect"
import { Redis as IORedis } from "ioredis"
import type { Event } from "../../src/domain/Event.ts"
import type { ClinicianRef, PatientRef } from "../../src/domain/Ref.ts"
import * as Redis from "../../src/interpreters/redis/Redis.ts"
import { type CareChange, CareRelationships } from "../../src/services/CareRelationships.ts"
import { EventBus } from "../../src/services/EventBus.ts"
import { Health } from "../../src/services/Health.ts"
import { RateLimiter } from "../../src/services/RateLimiter.ts"
import { Sessions } from "../../src/services/Sessions.ts"
import * as Settings from "../../src/services/Settings.ts"
import { TicketStore } from "../../src/services/TicketStore.ts"
import { testDataKeys } from "../support/data-key.ts"
import { hasRedisServer, skipReason, startRedis, type TestRedis } from "../support/redis.ts"
import { channel, clinicianRef, draft, eventually, fresh, jti, outcome, patientRef, freshSubject, until } from "./support.ts"

// A server given by URL (TIDINGS_TEST_REDIS_URL) cannot be killed and restarted from here.
const canKill = hasRedisServer && process.env.TIDINGS_TEST_REDIS_URL === undefined
const reason = hasRedisServer ? "TIDINGS_TEST_REDIS_URL is set: that server cannot be killed" : skipReason

describe.skipIf(!canKill)(`the Redis interpreters through an outage${canKill ? "" : ` (skipped: ${reason})`}`, () => {
  let redis: TestRedis
  let up = true

  beforeAll(async () => {
    // Persistent like production, so seq and history survive the restart.
    redis = await startRedis({ persistent: true })
  })
  afterEach(async () => {
    if (!up) await redis.restart()
    up = true
  })
  afterAll(async () => {
    await redis?.stop()
  })

  const kill = Effect.promise(async () => {
    up = false
    await redis.kill()
  })
  const restart = Effect.promise(async () => {
    await redis.restart()
    up = true
  })

  const provide = <A, E, R>(self: Effect.Effect<A, E, R>) =>
    self.pipe(
      Effect.provide(
        Redis.layer({ _tag: "Single", url: Redacted.make(redis.url) }, testDataKeys).pipe(
          Layer.provideMerge(Settings.layer({ maxSessionsPerSubject: 2 }))
        )
      )
    )

  const readyIs = (expected: boolean, withinMs: number) =>
    Effect.flatMap(Health, (health) => eventually(health.ready, (ready) => ready === expected, withinMs, `ready is ${expected}`))

  it.live("Health.ready turns false within 2 s of Redis dying, and true within 5 s of its return", () =>
    provide(Effect.gen(function*() {
      const health = yield* Health
      expect(yield* health.ready).toBe(true)
      yield* kill
      expect(yield* readyIs(false, 2_000)).toBeLessThan(2_000)
      yield* restart
      expect(yield* readyIs(true, 5_000)).toBeLessThan(5_000)
    })))

  it.live("while Redis is down every operation fails with Unavailable within 3 s (no defect, no hang), and works again after", () =>
    provide(Effect.gen(function*() {
      const [tickets, bus, limiter, sessions, care] = [
        yield* TicketStore, yield* EventBus, yield* RateLimiter, yield* Sessions, yield* CareRelationships
      ]
      const [c, p] = [clinicianRef(), patientRef()]
      const session = { id: fresh("ses"), subject: freshSubject(), end: () => undefined, reauthorize: () => undefined, reauthorizeAll: () => undefined, recheckCare: () => undefined, openedAt: 0, issuedAt: 0 }
      const rule = { scope: "message", limit: 5, windowMs: 1_000 } as const
      const operations: Record<string, Effect.Effect<unknown, unknown>> = {
        "TicketStore.put": tickets.put(freshSubject(), jti(), Duration.seconds(60)),
        "TicketStore.take": tickets.take(freshSubject(), jti()),
        "EventBus.publish": bus.publish(draft(channel()), fresh("key")),
        // Each item answers for itself: all of them Unavailable, or all published.
        "EventBus.publishAll": Effect.flatMap(
          bus.publishAll([draft(channel()), draft(channel())].map((d) => ({ draft: d, idempotencyKey: fresh("key") }))),
          (results) => {
            const failures = results.filter(Result.isFailure)
            if (failures.length === 0 && results.length === 2) return Effect.void
            if (failures.length === results.length) return Effect.fail(failures[0]!.failure)
            return Effect.die(new Error(`${failures.length} of ${results.length} items failed`))
          }
        ),
        "EventBus.subscribe": Effect.scoped(bus.subscribe(channel(), { event: () => undefined, reset: () => undefined })),
        "EventBus.head": bus.head(channel()),
        "EventBus.since": bus.since(channel(), { epoch: "k3Jd92Lq", seq: 0 }),
        "RateLimiter.consume": limiter.consume(`message:${fresh("sb")}`, rule),
        "Sessions.register": Effect.flatMap(sessions.register(session), (release) => release),
        // A ticket never put: once Redis answers, the answer is `used`.
        "Sessions.open": Effect.catchTag(sessions.open(session, jti(), { ...rule, scope: "connect" }), "TicketRejected", () => Effect.void),
        "Sessions.revoke": sessions.revoke(freshSubject(), 0),
        "Sessions.revokedAt": sessions.revokedAt(freshSubject()),
        "CareRelationships.grant": care.grant(c, p, undefined, 0),
        "CareRelationships.end": care.end(c, p),
        "CareRelationships.active": care.active(c, p, 0)
      }
      const run = Effect.forEach(Object.entries(operations), ([name, op]) => Effect.map(outcome(op, 3_000), (o) => [name, o]))

      yield* kill
      yield* readyIs(false, 2_000)
      expect(Object.fromEntries(yield* run)).toEqual({
        "TicketStore.put": "Unavailable:ticket-store",
        "TicketStore.take": "Unavailable:ticket-store",
        "EventBus.publish": "Unavailable:event-bus",
        "EventBus.publishAll": "Unavailable:event-bus",
        "EventBus.subscribe": "Unavailable:event-bus",
        "EventBus.head": "Unavailable:event-bus",
        "EventBus.since": "Unavailable:event-bus",
        "RateLimiter.consume": "Unavailable:rate-limiter",
        "Sessions.register": "Unavailable:sessions",
        "Sessions.open": "Unavailable:sessions",
        "Sessions.revoke": "Unavailable:sessions",
        "Sessions.revokedAt": "Unavailable:sessions",
        "CareRelationships.grant": "Unavailable:care-relationships",
        "CareRelationships.end": "Unavailable:care-relationships",
        "CareRelationships.active": "Unavailable:care-relationships"
      })

      yield* restart
      yield* readyIs(true, 5_000)
      const after = Object.fromEntries(yield* run)
      expect(Object.values(after).every((o) => o === "ok"), JSON.stringify(after)).toBe(true)
    })))

  it.live("a subscription made before the outage receives, in order, an event published after recovery", () =>
    provide(Effect.gen(function*() {
      const bus = yield* EventBus
      const on = channel()
      const seen: Array<Event> = []
      yield* bus.subscribe(on, { event: (event) => void seen.push(event), reset: () => void seen.push("reset" as never) })
      const before = draft(on)
      yield* bus.publish(before, fresh("key"))
      yield* until(() => seen.length >= 1, "the event before the outage is delivered")

      yield* kill
      yield* readyIs(false, 2_000)
      yield* restart
      yield* readyIs(true, 5_000)

      const after = draft(on)
      expect(yield* bus.publish(after, fresh("key"))).toMatchObject({ seq: 2, fresh: true })
      yield* until(() => seen.length >= 2, "the event after recovery is delivered", 5_000)
      expect(seen).toEqual([{ ...before, epoch: seen[0]!.epoch, seq: 1 }, { ...after, epoch: seen[0]!.epoch, seq: 2 }])
    })))

  it.live("revocations and care changes made after recovery reach this node's sessions and listeners", () =>
    provide(Effect.gen(function*() {
      const [sessions, care] = [yield* Sessions, yield* CareRelationships]
      const subject = freshSubject()
      const ended: Array<string> = []
      yield* sessions.register({ id: fresh("ses"), subject, end: (r) => void ended.push(r._tag), reauthorize: () => undefined, reauthorizeAll: () => undefined, recheckCare: () => undefined, openedAt: 0, issuedAt: 0 })
      const heard: Array<CareChange | "resync"> = []
      yield* care.onChanged((change) => void heard.push(change ?? "resync"))

      yield* kill
      yield* readyIs(false, 2_000)
      yield* restart
      yield* readyIs(true, 5_000)

      // The command connection can be back before the subscriber connection: announcements
      // sent in between are not replayed, so repeat them until heard (bounded).
      const [c, p] = [clinicianRef(), patientRef()]
      yield* eventually(
        Effect.andThen(care.grant(c, p, undefined, 0), Effect.sleep(Duration.millis(100))).pipe(Effect.as(heard)),
        (h) => h.some((x) => x !== "resync"),
        5_000,
        "a care change is heard after recovery"
      )
      // The reconnect itself is announced first as a re-check; then the change is heard.
      expect(heard.filter((h) => h !== "resync" && h.is(c, p))).not.toHaveLength(0)
      yield* eventually(
        Effect.andThen(
          Effect.flatMap(Clock.currentTimeMillis, (now) => sessions.revoke(subject, now)),
          Effect.sleep(Duration.millis(100))
        ).pipe(Effect.as(ended)),
        (e) => e.length > 0,
        5_000,
        "a revocation ends the session after recovery"
      )
      expect(ended[0]).toBe("SessionRevoked")
    })))

  /** Drops every pub/sub connection on the server (the node's subscriber reconnects on its own). */
  const dropPubSub = Effect.promise(async () => {
    const admin = new IORedis(redis.adminUrl, { lazyConnect: true })
    await admin.connect()
    try {
      await admin.call("CLIENT", "KILL", "TYPE", "pubsub")
    } finally {
      admin.disconnect()
    }
  })

  it.live("a subscription misses nothing published while its pub/sub connection drops and comes back", () =>
    provide(Effect.gen(function*() {
      const bus = yield* EventBus
      const on = channel()
      const seen: Array<Event> = []
      yield* bus.subscribe(on, { event: (event) => void seen.push(event), reset: () => void seen.push("reset" as never) })
      yield* dropPubSub
      const drafts = [draft(on), draft(on), draft(on)]
      for (const d of drafts) yield* bus.publish(d, fresh("key"))
      yield* until(() => seen.length >= 3, "the three events are delivered", 5_000)
      expect(seen).toEqual(drafts.map((d, i) => ({ ...d, epoch: seen[0]!.epoch, seq: i + 1 })))
    })))

  // The Sessions contract: revoke "ends every session of the subject on every node". Control
  // messages sent while the control connection is away are lost (the event bus backfills from
  // history; the control channel has nothing to catch up from): the reconnect triggers an
  // immediate re-check, and the periodic reconciliation backs it (redis-reconcile.test.ts).
  it.live("a revocation made while the pub/sub connection is reconnecting still ends this node's sessions", () =>
    provide(Effect.gen(function*() {
      const sessions = yield* Sessions
      const subject = freshSubject()
      const ended: Array<string> = []
      yield* sessions.register({ id: fresh("ses"), subject, end: (r) => void ended.push(r._tag), reauthorize: () => undefined, reauthorizeAll: () => undefined, recheckCare: () => undefined, openedAt: 0, issuedAt: 0 })
      yield* dropPubSub
      yield* sessions.revoke(subject, yield* Clock.currentTimeMillis)
      yield* until(() => ended.length > 0, "the revoked session is ended", 2_000)
      expect(ended).toEqual(["SessionRevoked"])
    })))

  it.live("a care change made while the pub/sub connection is reconnecting is not lost: listeners are told to re-check", () =>
    provide(Effect.gen(function*() {
      const care = yield* CareRelationships
      const heard: Array<CareChange | "resync"> = []
      yield* care.onChanged((change) => void heard.push(change ?? "resync"))
      const [c, p] = [clinicianRef(), patientRef()]
      yield* dropPubSub
      yield* care.end(c, p)
      // Either the change itself got through, or (announcement lost) a re-check of everything.
      yield* until(() => heard.length > 0, "the change or a re-check reaches the listener", 2_000)
      expect(heard.some((h) => h === "resync" || h.is(c, p))).toBe(true)
    })))
})
