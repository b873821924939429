// One subscriber connection per node, shared by the event bus and the control channel.
// Each Redis channel is SUBSCRIBEd when its first listener arrives and UNSUBSCRIBEd after
// its last leaves; ioredis re-subscribes everything after a reconnect.
import { Context, Effect, Layer, type Scope } from "effect"
import type { Redis } from "ioredis"
import { Unavailable } from "../../domain/Errors.ts"
import { RedisClient } from "./Client.ts"

export type MessageListener = (message: string) => void

export class RedisSubscriber extends Context.Service<RedisSubscriber, {
  /** Calls `listener` for every message on `name` while the scope is open. */
  readonly listen: (name: string, listener: MessageListener) => Effect.Effect<void, Unavailable, Scope.Scope>
  /**
   * Calls `listener` each time the connection is back after a drop, once its channels are
   * subscribed again: messages published in between were never seen and must be fetched.
   */
  readonly onReconnect: (listener: () => void) => Effect.Effect<void, never, Scope.Scope>
}>()("tidings/RedisSubscriber") {}

export const layer = Layer.effect(
  RedisSubscriber,
  Effect.gen(function*() {
    const client = yield* RedisClient
    const subscriber: Redis = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const copy = client.duplicate({ enableOfflineQueue: true })
          copy.on("error", () => undefined)
          if (copy.status === "wait") await copy.connect()
          return copy
        },
        catch: () => new Unavailable({ service: "event-bus" })
      }),
      (copy) => Effect.sync(() => copy.disconnect())
    )
    const listeners = new Map<string, Set<MessageListener>>()
    const reconnectListeners = new Set<() => void>()
    // "ready" comes after ioredis has re-subscribed (autoResubscribe); the first one was the
    // initial connect, before this listener existed.
    subscriber.on("ready", () => {
      for (const listener of reconnectListeners) listener()
    })
    subscriber.on("message", (name: string, message: string) => {
      for (const listener of listeners.get(name) ?? []) {
        try {
          listener(message)
        } catch {
          // One faulty listener must not starve the others.
        }
      }
    })

    const command = (run: () => Promise<unknown>) =>
      Effect.tryPromise({ try: run, catch: () => new Unavailable({ service: "event-bus" }) })

    return RedisSubscriber.of({
      onReconnect: (listener) =>
        Effect.acquireRelease(
          Effect.sync(() => reconnectListeners.add(listener)),
          () => Effect.sync(() => void reconnectListeners.delete(listener))
        ).pipe(Effect.asVoid),
      listen: (name, listener) =>
        Effect.acquireRelease(
          Effect.suspend(() => {
            const set = listeners.get(name)
            if (set !== undefined) {
              set.add(listener)
              return Effect.void
            }
            listeners.set(name, new Set([listener]))
            return command(() => subscriber.subscribe(name)).pipe(
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
              return command(() => subscriber.unsubscribe(name)).pipe(Effect.ignore)
            })
        )
    })
  })
)
