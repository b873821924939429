// Readiness on Redis: a PING answered within a second (on a cluster, by every master: one
// shard down fails the channels on its slots, so one random node answering proves nothing),
// and this node hearing its own heartbeat on the control channel (a node deaf to revocations
// must take no new work), and the cluster's key-check naming this node's data key (a node that
// names things otherwise would neither find nor be found). Each check also sets `tidings_redis_up`, which the metrics listener
// refreshes on every scrape; `tidings_control_channel_up` is kept by the heartbeat (Control.ts).
import { Effect, Layer, Metric } from "effect"
import type { Cluster, Redis } from "ioredis"
import { Health } from "../../services/Health.ts"
import { RedisClient } from "./Client.ts"
import { ControlChannel } from "./Control.ts"
import { DataKeys } from "./DataKey.ts"

export const redisUp = Metric.gauge("tidings_redis_up", {
  description: "1 when this node's Redis answered its last PING within a second, else 0"
})

export const layer = Layer.effect(
  Health,
  Effect.gen(function*() {
    const client = yield* RedisClient
    const redis = client.commands
    const control = yield* ControlChannel
    const data = yield* DataKeys
    const pingOne = (node: Redis) =>
      Effect.tryPromise(() => node.ping()).pipe(
        Effect.timeout("1 second"),
        Effect.map((reply) => reply === "PONG"),
        Effect.orElseSucceed(() => false)
      )
    // Every master the cluster client knows of: each owns slots some channel may hash to.
    const masters = () => (redis as unknown as Cluster).nodes("master")
    const ping = (client.cluster
      ? Effect.suspend(() => {
        const nodes = masters()
        return nodes.length === 0
          ? Effect.succeed(false)
          : Effect.map(Effect.forEach(nodes, pingOne, { concurrency: "unbounded" }), (answers) => answers.every(Boolean))
      })
      : pingOne(redis)
    ).pipe(Effect.tap((up) => Metric.update(redisUp, up ? 1 : 0)))
    return Health.of({
      ready: Effect.map(
        Effect.all([ping, control.up, data.matches], { concurrency: "unbounded" }),
        ([answers, hears, named]) => answers && hears && named
      )
    })
  })
)
