// The bus's subscriber connection on a real Redis, single and cluster: channels released
// together leave in one SUNSUBSCRIBE (one per hash slot on a cluster), and a channel listened
// to again before that goes out stays subscribed.
import { describe, expect, it } from "@effect/vitest"
import calculateSlot from "cluster-key-slot"
import { Effect, Layer, Redacted } from "effect"
import * as Client from "../../src/interpreters/redis/Client.ts"
import * as Subscriber from "../../src/interpreters/redis/Subscriber.ts"
import { useRedisTarget } from "../support/redis-target.ts"
import { recordRedisTraffic } from "../support/redis-traffic.ts"
import { hasRedisServer, skipReason } from "../support/redis.ts"
import { until } from "./support.ts"

const targets = ["single", "cluster"] as const

describe.skipIf(!hasRedisServer).each(targets)(`RedisSubscriber (%s)${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, (kind) => {
  const redis = useRedisTarget(kind)
  const layer = () => Subscriber.layer.pipe(Layer.provide(Client.layer(redis.target)))
  const ports = () =>
    redis.target._tag === "Single" ? [Number(new URL(Redacted.value(redis.target.url)).port)] : redis.target.nodes.map((node) => node.port)
  const names = (prefix: string) => Array.from({ length: 12 }, (_, i) => `tdg:{${prefix}${i}}:events`)

  it.live("unsubscribes channels released together in one SUNSUBSCRIBE per slot", () =>
    Effect.gen(function*() {
      const subscriber = yield* Subscriber.RedisSubscriber
      const channels = names(`leave-${kind}-`)
      const releases = yield* Effect.forEach(channels, (name) => subscriber.listen(name, () => undefined))
      const recorders = ports().map((port) => recordRedisTraffic(port))
      try {
        yield* Effect.forEach(releases, (release) => release, { discard: true })
        const unsubscribes = () => recorders.flatMap((r) => r.take()).flatMap((w) => w.commands).filter((c) => c[0] === "SUNSUBSCRIBE")
        const seen: Array<ReadonlyArray<string>> = []
        yield* until(() => (seen.push(...unsubscribes()), seen.flatMap((c) => c.slice(1)).length >= channels.length), "every channel is unsubscribed")
        expect(seen.flatMap((c) => c.slice(1)).sort()).toEqual([...channels].sort())
        const slots = new Set(channels.map((name) => calculateSlot(name)))
        expect(seen).toHaveLength(kind === "single" ? 1 : slots.size)
        for (const command of seen) expect(new Set(command.slice(1).map((name) => calculateSlot(name))).size).toBe(kind === "single" ? command.length - 1 : 1)
      } finally {
        for (const recorder of recorders.reverse()) recorder.stop()
      }
    }).pipe(Effect.scoped, Effect.provide(layer())))

  it.live("keeps a channel listened to again before its unsubscribe went out", () =>
    Effect.gen(function*() {
      const subscriber = yield* Subscriber.RedisSubscriber
      const tag = `again-${kind}`
      const name = `tdg:{${tag}}:events`
      const heard: Array<string> = []
      const first = yield* subscriber.listen(name, () => undefined)
      yield* first
      // The same turn: the unsubscribe is still gathered when the channel is wanted again.
      yield* subscriber.listen(name, (message) => void heard.push(message))
      // The gathered unsubscribes go out on the next turn (an immediate queued before this one);
      // then a channel of the same slot is subscribed on the same connection, so any SUNSUBSCRIBE
      // of `name` has been handled by Redis once this SSUBSCRIBE is answered.
      yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
      yield* subscriber.listen(`tdg:{${tag}}:barrier`, () => undefined)
      yield* Effect.promise(() => redis.admin.call("SPUBLISH", name, "still here"))
      yield* until(() => heard.length > 0, "the message on the channel listened to again")
      expect(heard).toEqual(["still here"])
    }).pipe(Effect.scoped, Effect.provide(layer())))
})
