// What Redis holds of an event is sealed to its channel and opens only under the data keys
// given: a value moved to another channel's key, a tampered value, or one under a key the node
// does not hold is taken as missing (and counted); a rotation opens old values and seals new
// ones with the new key; a node whose names key is not the cluster's is not ready.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Metric, Redacted } from "effect"
import { createHash } from "node:crypto"
import * as DataKey from "../../src/interpreters/redis/DataKey.ts"
import { Keys, named } from "../../src/interpreters/redis/Keys.ts"
import * as Redis from "../../src/interpreters/redis/Redis.ts"
import { EventBus } from "../../src/services/EventBus.ts"
import { Health } from "../../src/services/Health.ts"
import * as Settings from "../../src/services/Settings.ts"
import { TEST_DATA_KEY, testKeys } from "../support/data-key.ts"
import { hasRedisServer, skipReason, useRedis } from "../support/redis.ts"
import { channel, draft } from "./support.ts"

const keyOf = (label: string) => createHash("sha256").update(label).digest()
const NEW_KEY = keyOf("tidings test data key, rotated")
const STRANGER = keyOf("tidings test data key of another gateway")
const START = { epoch: "", seq: 0 }

describe("DataKey", () => {
  const key = DataKey.derive(TEST_DATA_KEY)
  const keys = new Map([[key.id, key]])

  it("opens what it sealed, under the same scope only", () => {
    const sealed = DataKey.seal(key, "scope-a", "{\"kind\":\"result.available\"}")
    expect(DataKey.open(keys, "scope-a", sealed)).toBe("{\"kind\":\"result.available\"}")
    expect(DataKey.open(keys, "scope-b", sealed)).toBeUndefined()
  })

  it("seals each value with a fresh nonce, and shows nothing of the plaintext", () => {
    const [one, two] = [DataKey.seal(key, "s", "pt_alice_0001"), DataKey.seal(key, "s", "pt_alice_0001")]
    expect(one).not.toBe(two)
    expect(one.startsWith(`${key.id}.`)).toBe(true)
    expect(one).not.toContain("pt_alice")
    expect(one).not.toContain("|")
  })

  it("refuses a tampered value, a truncated one and one under an unknown key id", () => {
    const sealed = DataKey.seal(key, "s", "hello")
    const body = Buffer.from(sealed.slice(sealed.indexOf(".") + 1), "base64url")
    body[body.length - 20]! ^= 1
    expect(DataKey.open(keys, "s", `${key.id}.${body.toString("base64url")}`)).toBeUndefined()
    expect(DataKey.open(keys, "s", sealed.slice(0, 20))).toBeUndefined()
    expect(DataKey.open(keys, "s", `AAAAAAAAAAA${sealed.slice(sealed.indexOf("."))}`)).toBeUndefined()
  })

  it("gives distinct keys, ids and names for distinct key material, and refuses a short key", () => {
    const other = DataKey.derive(NEW_KEY)
    expect(other.id).not.toBe(key.id)
    expect(DataKey.pseudonym(other, "s/patient:pt_alice_0001")).not.toBe(DataKey.pseudonym(key, "s/patient:pt_alice_0001"))
    expect(DataKey.pseudonym(key, "s/patient:pt_alice_0001")).toMatch(/^[A-Za-z0-9_-]{22}$/)
    expect(() => DataKey.derive(Buffer.alloc(31))).toThrow(/at least 32 bytes/)
  })
})

describe.skipIf(!hasRedisServer)(`sealed values on Redis${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  const server = useRedis()
  const node = (current: Uint8Array, previous: ReadonlyArray<Uint8Array> = []) =>
    Redis.layer({ _tag: "Single", url: Redacted.make(server.redis.url) }, { current, previous }).pipe(
      Layer.provideMerge(Settings.layer({ maxSessionsPerSubject: 2 }))
    )
  const failures = Effect.map(Metric.value(DataKey.sealedOpenFailures), (state) => state.count)

  it.live("a history entry copied under another channel's key does not open there, and is counted", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus
      const [from, to] = [channel(), channel()]
      yield* bus.publish(draft(from), "svc/1")
      yield* bus.publish(draft(to), "svc/2")
      const [a, b] = [testKeys.channel(from), testKeys.channel(to)]
      const [moved] = yield* Effect.promise(() => server.admin.lrange(a.history, 0, 0))
      // Placed as the next entry of the other channel, with that channel's seq: only the seal differs.
      const [, epoch, ms, sealed] = moved!.split("|")
      const [current] = yield* Effect.promise(() => server.admin.lrange(b.history, 0, 0))
      yield* Effect.promise(() => server.admin.lpush(b.history, `2|${current!.split("|")[1]}|${ms}|${sealed}`))
      yield* Effect.promise(() => server.admin.set(b.seq, 2))
      expect(epoch).toBeDefined()
      const before = yield* failures
      const head = yield* bus.head(to)
      const replayed = yield* bus.since(to, { epoch: head.epoch, seq: 0 })
      // Seq 2 does not open: history no longer covers the channel gap-free, so nothing is replayed as if whole.
      expect(replayed).toBeUndefined()
      expect((yield* failures) - before).toBeGreaterThanOrEqual(1)
    }).pipe(Effect.provide(node(TEST_DATA_KEY))))

  it.live("a tampered history entry does not open, and the replay does not pretend it is there", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus
      const on = channel()
      yield* bus.publish(draft(on), "svc/1")
      yield* bus.publish(draft(on), "svc/2")
      const keys = testKeys.channel(on)
      const [newest] = yield* Effect.promise(() => server.admin.lrange(keys.history, 0, 0))
      const flipped = newest!.slice(0, -3) + (newest!.endsWith("A") ? "B" : "A") + newest!.slice(-2)
      yield* Effect.promise(() => server.admin.lset(keys.history, 0, flipped))
      const before = yield* failures
      const head = yield* bus.head(on)
      expect((yield* bus.since(on, { epoch: head.epoch, seq: 1 }))).toBeUndefined()
      expect((yield* failures) - before).toBeGreaterThanOrEqual(1)
    }).pipe(Effect.provide(node(TEST_DATA_KEY))))

  it.live("after a rotation, values sealed under the previous key still open, and new ones carry the new key's id", () =>
    Effect.gen(function*() {
      const on = channel()
      const first = draft(on)
      yield* Effect.flatMap(EventBus, (bus) => bus.publish(first, "svc/rot")).pipe(Effect.provide(node(TEST_DATA_KEY)))
      const rotated = yield* Effect.gen(function*() {
        const bus = yield* EventBus
        yield* bus.publish(draft(on), "svc/rot-2")
        // A repeat of the first publish answers its id, sealed under the old key.
        const again = yield* bus.publish(first, "svc/rot")
        expect(again).toMatchObject({ id: first.id, seq: 1, fresh: false })
        const head = yield* bus.head(on)
        return yield* bus.since(on, { epoch: head.epoch, seq: 0 })
      }).pipe(Effect.provide(node(NEW_KEY, [TEST_DATA_KEY])))
      expect(rotated?.map((e) => e.seq)).toEqual([1, 2])
      expect(rotated?.[0]?.id).toBe(first.id)
      const history = yield* Effect.promise(() => server.admin.lrange(testKeys.channel(on).history, 0, -1))
      const ids = history.map((entry) => entry.split("|")[3]!.split(".")[0])
      expect(ids).toEqual([DataKey.derive(NEW_KEY).id, DataKey.derive(TEST_DATA_KEY).id])
    }))

  it.live("a node without the key the cluster names things with is not ready; with it among its previous keys it is", () =>
    Effect.gen(function*() {
      // Each node in a scope of its own: a layer provided inside another would share its services.
      const ready = (layer: ReturnType<typeof node>) => Effect.flatMap(Health, (health) => health.ready).pipe(Effect.provide(layer))
      const first = yield* ready(node(TEST_DATA_KEY))
      // The cluster's key-check names TEST_DATA_KEY (the first node to start wrote it).
      expect(yield* Effect.promise(() => server.admin.get(Keys.keyCheck))).toBe(DataKey.derive(TEST_DATA_KEY).id)
      const stranger = yield* ready(node(STRANGER))
      const rotating = yield* ready(node(STRANGER, [TEST_DATA_KEY]))
      expect({ first, stranger, rotating }).toEqual({ first: true, stranger: false, rotating: true })
      expect(yield* Effect.promise(() => server.admin.get(Keys.keyCheck))).toBe(DataKey.derive(TEST_DATA_KEY).id)
    }))

  it.live("names under the cluster's key during a rotation: a node with a new key finds the channels the others named", () =>
    Effect.gen(function*() {
      const on = channel()
      yield* Effect.flatMap(EventBus, (bus) => bus.publish(draft(on), "svc/n")).pipe(Effect.provide(node(TEST_DATA_KEY)))
      const head = yield* Effect.flatMap(EventBus, (bus) => bus.head(on)).pipe(Effect.provide(node(NEW_KEY, [TEST_DATA_KEY])))
      expect(head.seq).toBe(1)
      expect(named((text) => DataKey.pseudonym(DataKey.derive(NEW_KEY), text)).channel(on).seq).not.toBe(testKeys.channel(on).seq)
    }))
})
