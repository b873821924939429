// The node's Hub (services/Hub.ts): channel → local subscribers. The first local subscriber
// subscribes the bus, the last one leaving releases it. An event (or a reset) is encoded once, then
// offered to each subscriber without waiting on any socket: a slow one cannot slow the others
// or the publisher. Its metrics are tallied in the loop and recorded once, synchronously.
import { Deferred, Effect, Exit, Layer, Scope } from "effect"
import { type Channel, print } from "../domain/Channel.ts"
import type { Event } from "../domain/Event.ts"
import type { Unavailable } from "../domain/Errors.ts"
import type { Position, ResetCause } from "../domain/Position.ts"
import { Members } from "../domain/Members.ts"
import * as Wire from "../domain/Wire.ts"
import { type BusListener, EventBus } from "../services/EventBus.ts"
import { Hub, type Subscriber } from "../services/Hub.ts"
import * as Metrics from "./Metrics.ts"

interface Entry {
  readonly subscribers: Members<Subscriber>
  /** The channel's position as the bus subscription knows it (set once it is live). */
  position: () => Position
  readonly ready: Deferred.Deferred<void, Unavailable>
  readonly scope: Scope.Closeable
  /** Joins in progress or done and not yet left: the bus is released when it drops to 0. */
  holders: number
}

export const layer = Layer.effect(
  Hub,
  Effect.gen(function*() {
    const bus = yield* EventBus
    const channels = new Map<string, Entry>()
    // Captured once: the callback below runs outside any fiber, and updates the registry
    // through this context (the process-global registry unless the layer was given another).
    const context = yield* Effect.context<never>()

    const deliver = (entry: Entry) => (event: Event) => {
      if (entry.subscribers.size === 0) return
      const frame = Wire.event(event)
      let sent = 0
      let refused = 0
      entry.subscribers.forEach((subscriber) => {
        const pushed = subscriber.push(event, frame)
        if (pushed === "sent") sent += 1
        else if (pushed === "refused") refused += 1
      })
      if (sent + refused > 0) Metrics.recordFanOut(context, sent, refused, Date.now() - Date.parse(event.at))
    }

    // Rare (a store that lost state, a gap history cannot fill): logged once per channel
    // per node, with the cause and how many subscriptions it reached, never the channel.
    const reset = (channel: Channel, entry: Entry) => (head: Position, cause: ResetCause) => {
      const frame = Wire.reset(channel, head)
      entry.subscribers.forEach((subscriber) => subscriber.reset(head, frame))
      const subscriptions = entry.subscribers.size
      Metrics.recordResets(context, cause, subscriptions)
      Effect.runForkWith(context)(
        Effect.logWarning("channel reset").pipe(Effect.annotateLogs({ cause, subscriptions }))
      )
    }

    const listener = (channel: Channel, entry: Entry): BusListener => ({ event: deliver(entry), reset: reset(channel, entry) })

    const release = (key: string, entry: Entry) =>
      Effect.suspend(() => {
        entry.holders -= 1
        if (entry.holders > 0) return Effect.void
        if (channels.get(key) === entry) channels.delete(key)
        return Scope.close(entry.scope, Exit.void)
      })

    const acquire = (channel: Channel, key: string) =>
      Effect.suspend((): Effect.Effect<Entry, Unavailable> => {
        const existing = channels.get(key)
        if (existing !== undefined) {
          existing.holders += 1
          return Deferred.await(existing.ready).pipe(
            Effect.as(existing),
            Effect.onError(() => release(key, existing))
          )
        }
        const entry: Entry = {
          subscribers: new Members(),
          position: () => ({ epoch: "", seq: 0 }),
          ready: Deferred.makeUnsafe<void, Unavailable>(),
          scope: Scope.makeUnsafe(),
          holders: 1
        }
        channels.set(key, entry)
        return bus.subscribe(channel, listener(channel, entry)).pipe(
          Scope.provide(entry.scope),
          Effect.map((position) => {
            entry.position = position
          }),
          Effect.exit,
          Effect.flatMap((exit) => {
            Deferred.doneUnsafe(entry.ready, exit)
            return Exit.isSuccess(exit)
              ? Effect.succeed(entry)
              : Effect.andThen(release(key, entry), Effect.failCause(exit.cause))
          })
        )
      })

    return Hub.of({
      join: (channel, subscriber) => {
        const key = print(channel)
        // Uninterruptible, as an acquireRelease's acquire: the caller is handed the leave
        // of everything it joined, or joined nothing.
        return Effect.uninterruptible(Effect.map(acquire(channel, key), (entry) => {
          entry.subscribers.add(subscriber)
          let left = false
          const leave = Effect.suspend(() => {
            if (left) return Effect.void
            left = true
            entry.subscribers.delete(subscriber)
            return release(key, entry)
          })
          return { leave, position: entry.position() }
        }))
      },
      stats: () => {
        let subscribers = 0
        for (const entry of channels.values()) subscribers += entry.subscribers.size
        return { channels: channels.size, subscribers }
      }
    })
  })
)
