// One subscriber connection per node, shared by the event bus and the control channel.
// Event channels use sharded pub/sub (SSUBSCRIBE: on a cluster, only the shard that owns the
// channel's slot carries it); the control channel is classic pub/sub, heard cluster-wide.
// Each name is subscribed when its first listener arrives and unsubscribed after its last
// leaves; ioredis re-subscribes everything after a reconnect.
import { Context, Effect, Layer, type Scope } from "effect"
import type { Unavailable } from "../../domain/Errors.ts"
import { attempt, connect, RedisTargetRef, release } from "./Client.ts"

export type MessageListener = (message: string) => void

/** `sharded` for a channel's events, `broadcast` for what every node must hear. */
export type Delivery = "sharded" | "broadcast"

export class RedisSubscriber extends Context.Service<RedisSubscriber, {
  /** Calls `listener` for every message on `name` while the scope is open. */
  readonly listen: (name: string, delivery: Delivery, listener: MessageListener) => Effect.Effect<void, Unavailable, Scope.Scope>
  /**
   * Calls `listener` each time the connection is back after a drop, once its channels are
   * subscribed again: messages published in between were never seen and must be fetched.
   */
  readonly onReconnect: (listener: () => void) => Effect.Effect<void, never, Scope.Scope>
}>()("tidings/RedisSubscriber") {}

export const layer = Layer.effect(
  RedisSubscriber,
  Effect.gen(function*() {
    const subscriber = yield* Effect.acquireRelease(connect(yield* RedisTargetRef), release)
    const listeners = new Map<string, Set<MessageListener>>()
    const reconnectListeners = new Set<() => void>()
    const dispatch = (name: string, message: string) => {
      for (const listener of listeners.get(name) ?? []) {
        try {
          listener(message)
        } catch {
          // One faulty listener must not starve the others.
        }
      }
    }
    subscriber.on("message", dispatch)
    subscriber.on("smessage", dispatch)
    // "ready" comes after ioredis has re-subscribed (autoResubscribe); the first one was the
    // initial connect, before this listener existed.
    subscriber.on("ready", () => {
      for (const listener of reconnectListeners) listener()
    })

    const command = attempt("event-bus")

    return RedisSubscriber.of({
      onReconnect: (listener) =>
        Effect.acquireRelease(
          Effect.sync(() => reconnectListeners.add(listener)),
          () => Effect.sync(() => void reconnectListeners.delete(listener))
        ).pipe(Effect.asVoid),
      listen: (name, delivery, listener) =>
        Effect.acquireRelease(
          Effect.suspend(() => {
            const set = listeners.get(name)
            if (set !== undefined) {
              set.add(listener)
              return Effect.void
            }
            listeners.set(name, new Set([listener]))
            return command(() => (delivery === "sharded" ? subscriber.ssubscribe(name) : subscriber.subscribe(name))).pipe(
              Effect.tapError(() => Effect.sync(() => listeners.delete(name))),
              Effect.asVoid
            )
          }),
          () =>
            Effect.suspend(() => {
              const set = listeners.get(name)
              set?.delete(listener)
              if (set === undefined || set.size > 0) return Effect.void
              listeners.delete(name)
              return command(() => (delivery === "sharded" ? subscriber.sunsubscribe(name) : subscriber.unsubscribe(name)))
                .pipe(Effect.ignore)
            })
        )
    })
  })
)
