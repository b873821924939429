// Readiness on Redis: a PING answered within a second.
import { Effect, Layer } from "effect"
import { Health } from "../../services/Health.ts"
import { RedisClient } from "./Client.ts"

export const layer = Layer.effect(
  Health,
  Effect.gen(function*() {
    const redis = (yield* RedisClient).commands
    return Health.of({
      ready: Effect.tryPromise(() => redis.ping()).pipe(
        Effect.timeout("1 second"),
        Effect.map((reply) => reply === "PONG"),
        Effect.orElseSucceed(() => false)
      )
    })
  })
)
