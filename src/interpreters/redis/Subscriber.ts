// The event bus's subscriber connection, one per node: sharded pub/sub (SSUBSCRIBE: on a
// cluster, only the shard that owns the channel's slot carries it) and nothing else. The
// control channel has a connection of its own (Control.ts): this one leaves subscriber mode
// whenever its last channel is released, which must not take anything else with it.
// Each name is subscribed when its first listener arrives and unsubscribed after its last
// leaves (gathered with the others released in the same turn: one SUNSUBSCRIBE per slot). After a reconnect to a single Redis the channels are subscribed again here, not by
// ioredis: it forgets a channel whose re-SSUBSCRIBE is refused and leaves the refusal
// unhandled (an unhandled rejection ends the process). A refusal here reconnects and retries.
import { Context, Effect, Layer } from "effect"
import type { Unavailable } from "../../domain/Errors.ts"
import { Members } from "../../domain/Members.ts"
import { attempt, connect, RedisTargetRef, release } from "./Client.ts"
import { groupBySlot } from "./Slots.ts"

export type MessageListener = (message: string) => void

export class RedisSubscriber extends Context.Service<RedisSubscriber, {
  /**
   * Calls `listener` for every message on the sharded channel `name` until the returned
   * effect runs. No Scope: a node holds one per followed channel, and each finalizer a Scope
   * keeps is memory an idle channel holds (the caller runs the release in one of its own).
   */
  readonly listen: (name: string, listener: MessageListener) => Effect.Effect<Effect.Effect<void>, Unavailable>
  /**
   * Calls `listener` each time the connection is back after a drop and its channels are
   * subscribed again (messages published in between were never seen and must be fetched),
   * until the returned function is called.
   */
  readonly onReconnect: (listener: () => void) => () => void
}>()("tidings/RedisSubscriber") {}

export const layer = Layer.effect(
  RedisSubscriber,
  Effect.gen(function*() {
    const target = yield* RedisTargetRef
    // A cluster's sharded subscribers re-subscribe per shard by themselves.
    const resubscribeHere = target._tag === "Single"
    const subscriber = yield* Effect.acquireRelease(connect(target, { autoResubscribe: !resubscribeHere }), release)
    const listeners = new Map<string, Members<MessageListener>>()
    const reconnectListeners = new Set<() => void>()
    subscriber.on("smessage", (name: string, message: string) => {
      listeners.get(name)?.forEach((listener) => {
        try {
          listener(message)
        } catch {
          // One faulty listener must not starve the others.
        }
      })
    })
    // "ready" after a reconnect (the first one was the initial connect, before this listener
    // existed). The listeners fetch what was missed once the channels are subscribed again, not
    // before: an event published between their read and the SSUBSCRIBE would reach neither. A
    // refused channel drops the connection once more, and the next "ready" tries again (at
    // ioredis's reconnect pace), so no channel stays deaf while its subscribers wait.
    const caughtUp = () => {
      for (const listener of reconnectListeners) listener()
    }
    subscriber.on("ready", () => {
      const names = [...listeners.keys()]
      if (!resubscribeHere || names.length === 0) return caughtUp()
      subscriber.ssubscribe(...names).then(caughtUp, () => {
        if (subscriber.status === "ready") subscriber.disconnect(true)
      })
    })

    const command = attempt("event-bus")

    // Unsubscribes are gathered until the next turn of the event loop and sent together: one
    // SUNSUBSCRIBE for all on a single Redis, one per hash slot on a Cluster (a command's
    // channels must share one there). A node shutting down, or the old sessions of a reconnect
    // storm, release thousands of channels at once; one write each held the exit back.
    let leaving: Set<string> | undefined
    const flushLeaving = () => {
      // A name listened to again meanwhile stays: its SSUBSCRIBE went out before this would.
      const names = [...leaving!].filter((name) => !listeners.has(name))
      leaving = undefined
      // Failing, the connection is down: channels are not subscribed again after it.
      for (const group of groupBySlot(!resubscribeHere, names, (name) => name)) {
        subscriber.sunsubscribe(...group).catch(() => undefined)
      }
    }
    const leave = (name: string) => {
      if (leaving === undefined) {
        leaving = new Set()
        setImmediate(flushLeaving)
      }
      leaving.add(name)
    }

    return RedisSubscriber.of({
      onReconnect: (listener) => {
        reconnectListeners.add(listener)
        return () => void reconnectListeners.delete(listener)
      },
      listen: (name, listener) =>
        Effect.suspend(() => {
          let released = false
          const release = Effect.suspend(() => {
            if (released) return Effect.void
            released = true
            const set = listeners.get(name)
            set?.delete(listener)
            if (set === undefined || set.size > 0) return Effect.void
            listeners.delete(name)
            leave(name)
            return Effect.void
          })
          const set = listeners.get(name)
          if (set !== undefined) {
            set.add(listener)
            return Effect.succeed(release)
          }
          const members = new Members<MessageListener>()
          members.add(listener)
          listeners.set(name, members)
          return command(() => subscriber.ssubscribe(name)).pipe(
            // A SUNSUBSCRIBE too: this may have been a channel gathered to leave (skipped as
            // wanted again), or the SSUBSCRIBE may have gone through without its answer.
            Effect.tapError(() => Effect.sync(() => {
              listeners.delete(name)
              leave(name)
            })),
            Effect.as(release)
          )
        })
    })
  })
)
