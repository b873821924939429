// Readiness on Redis: a PING answered within a second, and this node hearing its own
// heartbeat on the control channel (a node deaf to revocations must take no new work). Each
// check also sets `tidings_redis_up`, which the metrics listener refreshes on every scrape;
// `tidings_control_channel_up` is kept by the heartbeat itself (Control.ts).
import { Effect, Layer, Metric } from "effect"
import { Health } from "../../services/Health.ts"
import { RedisClient } from "./Client.ts"
import { ControlChannel } from "./Control.ts"

export const redisUp = Metric.gauge("tidings_redis_up", {
  description: "1 when this node's Redis answered its last PING within a second, else 0"
})

export const layer = Layer.effect(
  Health,
  Effect.gen(function*() {
    const redis = (yield* RedisClient).commands
    const control = yield* ControlChannel
    const ping = Effect.tryPromise(() => redis.ping()).pipe(
      Effect.timeout("1 second"),
      Effect.map((reply) => reply === "PONG"),
      Effect.orElseSucceed(() => false),
      Effect.tap((up) => Metric.update(redisUp, up ? 1 : 0))
    )
    return Health.of({
      ready: Effect.zipWith(ping, control.up, (answers, hears) => answers && hears)
    })
  })
)
