// What a channel keeps on Redis, and for how long: its seq and epoch expire together a day after
// its last event (so a channel back after a quiet day starts a new epoch), and each history entry
// is served and kept for a day only, however often the channel publishes.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import * as DataKey from "../../src/interpreters/redis/DataKey.ts"
import { RETENTION_S } from "../../src/interpreters/redis/EventBus.ts"
import * as Redis from "../../src/interpreters/redis/Redis.ts"
import * as Channel from "../../src/domain/Channel.ts"
import { subjectFor } from "../../src/domain/Principal.ts"
import { CareRelationships } from "../../src/services/CareRelationships.ts"
import { EventBus } from "../../src/services/EventBus.ts"
import * as Settings from "../../src/services/Settings.ts"
import { TEST_DATA_KEY, testDataKeys, testKeys } from "../support/data-key.ts"
import { hasRedisServer, skipReason, useRedis } from "../support/redis.ts"
import { channel, clinicianRef, draft, patientRef } from "./support.ts"

const DAY_MS = RETENTION_S * 1000

describe.skipIf(!hasRedisServer)(`retention on Redis${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  const server = useRedis()
  const layer = () =>
    Redis.layer({ _tag: "Single", url: Redacted.make(server.redis.url) }, testDataKeys).pipe(
      Layer.provideMerge(Settings.layer({ maxSessionsPerSubject: 2 }))
    )

  it.live("gives a channel's seq, epoch and history one day to live from its last event", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus
      const on = channel()
      yield* bus.publish(draft(on), "svc/1")
      const keys = testKeys.channel(on)
      const ttls = yield* Effect.promise(() => Promise.all([keys.seq, keys.epoch, keys.history].map((key) => server.admin.pttl(key))))
      for (const ttl of ttls) {
        expect(ttl).toBeGreaterThan(DAY_MS - 60_000)
        expect(ttl).toBeLessThanOrEqual(DAY_MS)
      }
      // Together: within the script's own step of each other.
      expect(Math.max(...ttls) - Math.min(...ttls)).toBeLessThan(1_000)
    }).pipe(Effect.provide(layer())))

  it.live("never serves an entry older than a day, and erases it at the channel's next publish", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus
      const on = channel()
      const first = yield* bus.publish(draft(on), "svc/1")
      const keys = testKeys.channel(on)
      // The first entry as if published 25 hours ago (its time is in the message, sealed beside it).
      const [entry] = yield* Effect.promise(() => server.admin.lrange(keys.history, 0, 0))
      const [seq, epoch, , sealed] = entry!.split("|")
      const old = `${seq}|${epoch}|${Date.now() - DAY_MS - 3_600_000}|${sealed}`
      yield* Effect.promise(() => server.admin.lset(keys.history, 0, old))
      expect(yield* bus.since(on, { epoch: first.epoch, seq: 0 })).toBeUndefined()
      yield* bus.publish(draft(on), "svc/2")
      const left = yield* Effect.promise(() => server.admin.lrange(keys.history, 0, -1))
      expect(left.map((m) => Number(m.split("|")[0]))).toEqual([2])
      // What is left still opens, and replays from seq 1.
      expect((yield* bus.since(on, { epoch: first.epoch, seq: 1 }))?.map((e) => e.seq)).toEqual([2])
      expect(DataKey.derive(TEST_DATA_KEY).id).toBe(left[0]!.split("|")[3]!.split(".")[0])
    }).pipe(Effect.provide(layer())))

  it.live("keeps a clinician's care relationships until the last one's end: run-out ones go at the next grant, and one without an end keeps the hash", () =>
    Effect.gen(function*() {
      const care = yield* CareRelationships
      const [c, early, late, open] = [clinicianRef(), patientRef(), patientRef(), patientRef()]
      const now = Date.now()
      const key = testKeys.care(subjectFor("clinician", c))
      const field = (p: typeof early) => testKeys.channelTag(Channel.patient(p))
      yield* care.grant(c, early, now + 1_000, now)
      yield* care.grant(c, late, now + 60_000, now)
      const ttl = yield* Effect.promise(() => server.admin.pttl(key))
      expect(ttl).toBeGreaterThan(55_000)
      expect(ttl).toBeLessThanOrEqual(60_000)
      // Two seconds on (by the caller's clock): the early one has run out and goes.
      yield* care.grant(c, open, undefined, now + 2_000)
      expect((yield* Effect.promise(() => server.admin.hkeys(key))).sort()).toEqual([field(late), field(open)].sort())
      expect(yield* Effect.promise(() => server.admin.pttl(key))).toBe(-1)
      yield* care.end(c, open)
      yield* care.end(c, late)
      expect(yield* Effect.promise(() => server.admin.exists(key))).toBe(0)
    }).pipe(Effect.provide(layer())))
})
