// The ioredis connections of one node: a command connection and one subscriber connection,
// as scoped resources. Commands fail fast while Redis is away (no offline queue), so callers
// fail closed (503 / 4503) instead of piling up; the connections reconnect on their own.
import { Context, Effect, Layer, Redacted, Schema } from "effect"
import { Redis } from "ioredis"

export class RedisClient extends Context.Service<RedisClient, Redis>()("tidings/RedisClient") {}

/** Redis did not answer when the node started; carries nothing of the URL (it may hold a password). */
export class RedisUnreachable extends Schema.TaggedError<RedisUnreachable>()("RedisUnreachable", {}) {}

export interface RedisOptions {
  readonly url: Redacted.Redacted<string>
}

const connect = (url: string) =>
  Effect.tryPromise({
    try: async () => {
      const client = new Redis(url, {
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        commandTimeout: 2_000,
        connectTimeout: 2_000,
        autoResubscribe: true,
        // Keep trying, never more than a second apart: readiness comes back on its own.
        retryStrategy: (times) => Math.min(times * 100, 1_000)
      })
      // Errors surface through the commands that fail; without a listener ioredis would print.
      client.on("error", () => undefined)
      try {
        await client.connect()
        return client
      } catch (error) {
        client.disconnect()
        throw error
      }
    },
    catch: () => new RedisUnreachable()
  })

export const layer = (options: RedisOptions) =>
  Layer.effect(
    RedisClient,
    Effect.acquireRelease(connect(Redacted.value(options.url)), (client) =>
      Effect.promise(() => client.quit().then(() => undefined, () => client.disconnect())))
  )
