// The ioredis command connection of one node, to a single Redis or to a Redis Cluster, as a
// scoped resource. Commands fail fast while Redis is away (no offline queue), so callers fail
// closed (503 / 4503) instead of piling up; the connection reconnects on its own.
import { Context, Effect, Layer, Redacted, Schema } from "effect"
import { Cluster, Redis } from "ioredis"
import { Unavailable } from "../../domain/Errors.ts"

/** Where Redis is; `password` read from TIDINGS_REDIS_PASSWORD_FILE, when set. */
export type RedisTarget =
  | { readonly _tag: "Single"; readonly url: Redacted.Redacted<string>; readonly password?: Redacted.Redacted<string> }
  | {
    readonly _tag: "Cluster"
    readonly nodes: ReadonlyArray<{ readonly host: string; readonly port: number }>
    readonly password?: Redacted.Redacted<string>
  }

export class RedisClient extends Context.Service<RedisClient, {
  /**
   * Commands. A Cluster client answers the same commands as a single one (ioredis mirrors the
   * API), so the interpreters are written once against `Redis`; they use single-slot
   * commands and scripts only, which is what a cluster can run.
   */
  readonly commands: Redis
  readonly cluster: boolean
}>()("tidings/RedisClient") {}

/** A command for one service: any failure (down, timeout, refused) is that service Unavailable. */
export const attempt = (service: Unavailable["service"]) => <A>(run: () => Promise<A>) =>
  Effect.tryPromise({ try: run, catch: () => new Unavailable({ service }) })

/** Redis did not answer when the node started; carries nothing of the URL (it may hold a password). */
export class RedisUnreachable extends Schema.TaggedError<RedisUnreachable>()("RedisUnreachable", {
  /** Redis answered but refused the credentials (a configuration problem, not an outage). */
  refused: Schema.Boolean
}) {}

const AUTH_REFUSED = /WRONGPASS|NOAUTH|NOPERM|invalid (username|password)/i

const PER_CONNECTION = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  commandTimeout: 2_000,
  connectTimeout: 2_000,
  autoResubscribe: true,
  // Keep trying, never more than a second apart: readiness comes back on its own.
  retryStrategy: (times: number) => Math.min(times * 100, 1_000)
}

export interface ConnectOptions {
  /**
   * Commands issued in the same tick go out as one write, which is what keeps a node's many
   * concurrent sessions from paying a socket write (and its CPU) per command.
   */
  readonly pipelining?: boolean
  /**
   * Whether ioredis re-subscribes by itself after a reconnect (on a single Redis). The
   * control connection does it itself: ioredis leaves a refused re-SUBSCRIBE unhandled.
   */
  readonly autoResubscribe?: boolean
}

const passwordOf = (target: RedisTarget) => (target.password === undefined ? {} : { password: Redacted.value(target.password) })

const create = (target: RedisTarget, { autoResubscribe = true, pipelining = false }: ConnectOptions): Redis =>
  target._tag === "Single"
    ? new Redis(Redacted.value(target.url), {
      ...PER_CONNECTION,
      ...passwordOf(target),
      autoResubscribe,
      lazyConnect: true,
      enableAutoPipelining: pipelining
    })
    : new Cluster([...target.nodes], {
      lazyConnect: true,
      enableOfflineQueue: false,
      enableAutoPipelining: pipelining,
      shardedSubscribers: true,
      clusterRetryStrategy: (times: number) => Math.min(times * 100, 1_000),
      redisOptions: { ...PER_CONNECTION, ...passwordOf(target) }
    }) as unknown as Redis

/** Connects a new client to the target (also used for each node's subscriber connections). */
export const connect = (target: RedisTarget, options: ConnectOptions = {}) =>
  Effect.tryPromise({
    try: async () => {
      const client = create(target, options)
      // Errors surface through the commands that fail; without a listener ioredis would print.
      // The first connect's are kept: a refused AUTH shows there, not in connect's rejection.
      const seen: Array<string> = []
      const onError = (error: Error) => void seen.push(String(error?.message))
      client.on("error", onError)
      try {
        await client.connect()
        return client
      } catch (error) {
        client.disconnect()
        throw new RedisUnreachable({ refused: [...seen, String((error as Error | undefined)?.message)].some((m) => AUTH_REFUSED.test(m)) })
      } finally {
        client.off("error", onError)
        client.on("error", () => undefined)
      }
    },
    catch: (error) => error instanceof RedisUnreachable ? error : new RedisUnreachable({ refused: false })
  })

export const release = (client: Redis) =>
  Effect.promise(() => client.quit().then(() => undefined, () => client.disconnect()))

export const layer = (target: RedisTarget) =>
  Layer.effect(
    RedisClient,
    Effect.map(Effect.acquireRelease(connect(target, { pipelining: true }), release), (commands) => ({
      commands,
      cluster: target._tag === "Cluster"
    }))
  ).pipe(Layer.provideMerge(Layer.succeed(RedisTargetRef, target)))

/** Where the node's Redis is, for the connections beside the command one. */
export class RedisTargetRef extends Context.Service<RedisTargetRef, RedisTarget>()("tidings/RedisTarget") {}
