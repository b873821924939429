// In-memory event bus: one synchronous step per publish (idempotency, epoch and seq, history,
// fan-out), so seq order is delivery order. Subscriptions follow the channel with the same
// rules as on Redis (interpreters/Follower.ts). `MemoryBus` lets tests do to the store what a
// failing Redis would: lose a channel's state, roll its seq back, drop the fan-out for a while.
import { Clock, Context, Effect, Layer, Result } from "effect"
import { type Channel, print } from "../../domain/Channel.ts"
import type { Event, EventDraft } from "../../domain/Event.ts"
import { HISTORY_PER_CHANNEL, IDEMPOTENCY_TTL_S } from "../../domain/Limits.ts"
import { type Position, replay } from "../../domain/Position.ts"
import { EventBus, type Published } from "../../services/EventBus.ts"
import { type ChannelStore, follow, type Follower, newEpoch } from "../Follower.ts"

interface ChannelState {
  /** Undefined until the channel's first publish or subscribe, and after its state is lost. */
  epoch: string | undefined
  seq: number
  history: Array<Event>
  readonly followers: Set<Follower>
}

export class MemoryBus extends Context.Service<MemoryBus, {
  /** Forgets the channel's epoch, seq, history and idempotency records (Redis restarted empty). */
  readonly lose: (channel: Channel) => void
  /** Sets the channel's seq back, history with it, keeping the epoch (an older snapshot). */
  readonly rollback: (channel: Channel, seq: number) => void
  /** While deaf, publishes reach no subscriber (a dropped pub/sub connection). */
  readonly deafen: () => void
  /**
   * Hears again, and every subscription catches up (the reconnect); with `notify` false they
   * are not told, and find the gap from the next event's seq.
   */
  readonly reconnect: (notify?: boolean) => void
}>()("tidings/MemoryBus") {}

/** Provides the EventBus and, for tests, MemoryBus. */
export const layer = Layer.effectContext(Effect.sync(() => {
  const channels = new Map<string, ChannelState>()
  const seen = new Map<string, { readonly published: Published; readonly expiresAt: number }>()
  let publishes = 0
  let deaf = false

  const stateOf = (key: string): ChannelState => {
    let state = channels.get(key)
    if (state === undefined) {
      state = { epoch: undefined, seq: 0, history: [], followers: new Set() }
      channels.set(key, state)
    }
    return state
  }
  const headOf = (state: ChannelState): Position => ({ epoch: (state.epoch ??= newEpoch()), seq: state.seq })

  const store = (state: ChannelState): ChannelStore => ({
    read: Effect.sync(() => ({ head: headOf(state), history: [...state.history] })),
    rotate: (expected) =>
      Effect.sync(() => {
        if (state.epoch === undefined || state.epoch === expected) state.epoch = newEpoch()
        return headOf(state)
      })
  })

  const publishNow = (draft: EventDraft, idempotencyKey: string, now: number): Published => {
    if (++publishes % 4096 === 0) {
      for (const [id, entry] of seen) if (entry.expiresAt <= now) seen.delete(id)
    }
    const idem = `${print(draft.channel)}|${idempotencyKey}`
    const previous = seen.get(idem)
    if (previous !== undefined && previous.expiresAt > now) return { ...previous.published, fresh: false }
    const state = stateOf(print(draft.channel))
    const epoch = headOf(state).epoch
    const event: Event = { ...draft, epoch, seq: ++state.seq }
    state.history.push(event)
    if (state.history.length > HISTORY_PER_CHANNEL) state.history.shift()
    const published: Published = { id: event.id, channel: event.channel, epoch, seq: event.seq, fresh: true }
    seen.set(idem, { published, expiresAt: now + IDEMPOTENCY_TTL_S * 1000 })
    if (!deaf) {
      for (const follower of state.followers) {
        try {
          follower.receive(event)
        } catch {
          // A faulty listener must not stop the others or fail the publish.
        }
      }
    }
    return published
  }

  const bus = EventBus.of({
    publish: (draft, idempotencyKey) => Effect.map(Clock.currentTimeMillis, (now) => publishNow(draft, idempotencyKey, now)),
    publishAll: (items) =>
      Effect.map(Clock.currentTimeMillis, (now) => items.map(({ draft, idempotencyKey }) => Result.succeed(publishNow(draft, idempotencyKey, now)))),
    subscribe: (channel, listener) =>
      Effect.gen(function*() {
        const state = stateOf(print(channel))
        const follower = yield* follow(store(state), listener)
        yield* Effect.acquireRelease(
          Effect.sync(() => state.followers.add(follower)),
          () => Effect.sync(() => void state.followers.delete(follower))
        )
        // Publishing is synchronous here, so the channel's own head is where the follower starts.
        follower.start(headOf(state))
        return () => follower.position()
      }),
    head: (channel) => Effect.sync(() => headOf(stateOf(print(channel)))),
    since: (channel, from) =>
      Effect.sync(() => {
        const state = stateOf(print(channel))
        return replay(headOf(state), state.history, from)
      })
  })

  const control = MemoryBus.of({
    lose: (channel) => {
      const key = print(channel)
      const state = channels.get(key)
      if (state !== undefined) {
        state.epoch = undefined
        state.seq = 0
        state.history = []
      }
      for (const id of seen.keys()) if (id.startsWith(`${key}|`)) seen.delete(id)
    },
    rollback: (channel, seq) => {
      const state = stateOf(print(channel))
      state.seq = seq
      state.history = state.history.filter((event) => event.seq <= seq)
    },
    deafen: () => {
      deaf = true
    },
    reconnect: (notify = true) => {
      deaf = false
      if (notify) for (const state of channels.values()) for (const follower of state.followers) follower.catchUp()
    }
  })

  return Context.make(EventBus, bus).pipe(Context.add(MemoryBus, control))
}))
