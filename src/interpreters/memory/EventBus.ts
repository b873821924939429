// In-memory bus for one node: idempotency, seq, history and fan-out in one synchronous
// step, which is what makes it atomic. Listeners are called in seq order and must not block.
import { Clock, Effect, Layer } from "effect"
import { print } from "../../domain/Channel.ts"
import type { Event } from "../../domain/Event.ts"
import { HISTORY_PER_CHANNEL, IDEMPOTENCY_TTL_S } from "../../domain/Limits.ts"
import { type EventListener, EventBus, type Published } from "../../services/EventBus.ts"

interface ChannelState {
  seq: number
  readonly history: Array<Event>
  readonly listeners: Set<EventListener>
}

export const layer = Layer.sync(EventBus, () => {
  const channels = new Map<string, ChannelState>()
  const seen = new Map<string, { readonly published: Published; readonly expiresAt: number }>()
  let publishes = 0

  const stateOf = (key: string): ChannelState => {
    let state = channels.get(key)
    if (state === undefined) {
      state = { seq: 0, history: [], listeners: new Set() }
      channels.set(key, state)
    }
    return state
  }

  return EventBus.of({
    publish: (draft, idempotencyKey) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        if (++publishes % 4096 === 0) {
          for (const [id, entry] of seen) if (entry.expiresAt <= now) seen.delete(id)
        }
        const idem = `${print(draft.channel)}|${idempotencyKey}`
        const previous = seen.get(idem)
        if (previous !== undefined && previous.expiresAt > now) return { ...previous.published, fresh: false }
        const state = stateOf(print(draft.channel))
        const event: Event = { ...draft, seq: ++state.seq }
        state.history.push(event)
        if (state.history.length > HISTORY_PER_CHANNEL) state.history.shift()
        const published: Published = { id: event.id, channel: event.channel, seq: event.seq, fresh: true }
        seen.set(idem, { published, expiresAt: now + IDEMPOTENCY_TTL_S * 1000 })
        for (const listener of state.listeners) {
          try {
            listener(event)
          } catch {
            // A faulty listener must not stop the others or fail the publish.
          }
        }
        return published
      }),
    subscribe: (channel, listener) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const state = stateOf(print(channel))
          state.listeners.add(listener)
          // Publishing is synchronous here, so the channel's own seq is what the listener follows.
          return () => state.seq
        }),
        () => Effect.sync(() => void channels.get(print(channel))?.listeners.delete(listener))
      ),
    lastSeq: (channel) => Effect.sync(() => channels.get(print(channel))?.seq ?? 0),
    since: (channel, seq) =>
      Effect.sync(() => {
        const state = channels.get(print(channel))
        if (state === undefined) return seq === 0 ? [] : undefined
        const first = state.history[0]?.seq ?? state.seq + 1
        // Recoverable only if nothing between `seq` and the oldest kept event was dropped.
        if (seq + 1 < first) return undefined
        return state.history.filter((event) => event.seq > seq)
      })
  })
})
