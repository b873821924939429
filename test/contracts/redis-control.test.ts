// The control channel's heartbeat on a real redis-server (real time, a beat every 200 ms): a
// node that stops hearing its own beat says so through Health.ready and
// `tidings_control_channel_up`, repairs its subscription by itself, and says so again.
// The node connects as its own ACL user, so a test can take the channel away from it alone.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Metric, Redacted } from "effect"
import { Redis as IORedis } from "ioredis"
import * as Client from "../../src/interpreters/redis/Client.ts"
import * as Control from "../../src/interpreters/redis/Control.ts"
import * as RedisHealth from "../../src/interpreters/redis/Health.ts"
import { Keys } from "../../src/interpreters/redis/Keys.ts"
import { Health } from "../../src/services/Health.ts"
import { testDataKeysLayer } from "../support/data-key.ts"
import { gatewayUser, hasRedisServer, skipReason, startRedis, type TestRedis } from "../support/redis.ts"
import { eventually } from "./support.ts"

const HEARTBEAT_MS = 200

describe.skipIf(!hasRedisServer)(`the control channel's heartbeat${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  let redis: TestRedis
  let admin: IORedis

  beforeAll(async () => {
    redis = await startRedis()
    admin = new IORedis(redis.adminUrl, { lazyConnect: true })
    await admin.connect()
    // A user of the node's own (the gateway's rules), so a test can change it alone.
    await admin.call("ACL", "SETUSER", ...gatewayUser("node", "pw_node"))
  })
  afterAll(async () => {
    await admin?.quit()
    await redis?.stop()
  })

  const node = () =>
    RedisHealth.layer.pipe(
      Layer.provideMerge(Control.layerWith({ heartbeatMs: HEARTBEAT_MS })),
      Layer.provideMerge(testDataKeysLayer),
      Layer.provideMerge(Client.layer({ _tag: "Single", url: Redacted.make(`redis://node:pw_node@127.0.0.1:${redis.port}`) }))
    )

  /** What the node reports: ready, hearing itself, and the gauge. */
  const report = Effect.gen(function*() {
    const ready = yield* (yield* Health).ready
    const up = yield* (yield* Control.ControlChannel).up
    const gauge = (yield* Metric.value(Control.controlUp)).value
    return { ready, up, gauge }
  })
  const reports = (expected: { ready: boolean; up: boolean; gauge: number }, what: string) =>
    eventually(report, (r) => r.ready === expected.ready && r.up === expected.up && r.gauge === expected.gauge, HEARTBEAT_MS * 15, what)

  const subscribers = Effect.promise(async () => {
    const [, count] = (await admin.call("PUBSUB", "NUMSUB", Keys.control)) as [string, number]
    return Number(count)
  })

  it.live("is ready, hears itself and reports 1 while its control subscription works", () =>
    Effect.gen(function*() {
      yield* Effect.sleep(HEARTBEAT_MS * 3)
      expect(yield* report).toEqual({ ready: true, up: true, gauge: 1 })
      expect(yield* subscribers).toBe(1)
    }).pipe(Effect.provide(node())))

  it.live("deafened (Redis drops and refuses its control subscription), it reports 0 and is not ready; allowed again, it subscribes again by itself and recovers", () =>
    Effect.gen(function*() {
      yield* reports({ ready: true, up: true, gauge: 1 }, "hears itself at first")
      const missedBefore = (yield* Metric.value(Control.heartbeatsMissed)).count
      yield* Effect.promise(() => admin.call("ACL", "SETUSER", "node", "resetchannels", "&tdg:{*"))
      yield* reports({ ready: false, up: false, gauge: 0 }, "reports the deaf control channel")
      expect((yield* Metric.value(Control.heartbeatsMissed)).count).toBeGreaterThan(missedBefore)
      yield* Effect.promise(() => admin.call("ACL", "SETUSER", "node", "resetchannels", "&tdg:*"))
      yield* reports({ ready: true, up: true, gauge: 1 }, "recovers once allowed again")
      expect(yield* subscribers).toBe(1)
    }).pipe(Effect.provide(node())))

  it.live("after CLIENT KILL TYPE pubsub it subscribes again and hears itself", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* reports({ ready: true, up: true, gauge: 1 }, "hears itself at first")
      const reconnects: Array<true> = []
      yield* (yield* Control.ControlChannel).onReconnect(() => void reconnects.push(true))
      yield* Effect.promise(() => admin.call("CLIENT", "KILL", "TYPE", "pubsub"))
      yield* eventually(Effect.sync(() => reconnects.length), (n) => n > 0, 5_000, "the reconnect is announced to listeners")
      yield* eventually(subscribers, (n) => n === 1, 5_000, "subscribed again")
      yield* reports({ ready: true, up: true, gauge: 1 }, "hears itself again")
    })).pipe(Effect.provide(node())))
})
