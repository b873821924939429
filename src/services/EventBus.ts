// Carries events to every node with a subscriber on their channel, the publishing node
// included. Publishing is one atomic step: idempotency on `id`, the channel's epoch and next
// `seq`, the history for `since` recovery, and the fan-out, so `seq` order is delivery order.
import { Context, type Effect, type Result, type Scope } from "effect"
import type { Channel } from "../domain/Channel.ts"
import type { Accepted, Event, EventDraft } from "../domain/Event.ts"
import type { Unavailable } from "../domain/Errors.ts"
import type { Position, ResetCause } from "../domain/Position.ts"

export interface Published extends Accepted {
  /** The epoch the event was published in. */
  readonly epoch: string
  /** False when the `id` was already published within the idempotency window. */
  readonly fresh: boolean
}

/** One draft of a `publishAll`, with the key it is idempotent under. */
export interface PublishItem {
  readonly draft: EventDraft
  readonly idempotencyKey: string
}

/** What a subscription hands over; neither may block. */
export interface BusListener {
  /** The channel's events, in `(epoch, seq)` order: each is the seq after the one before. */
  readonly event: (event: Event) => void
  /**
   * Gap-free delivery can no longer be promised: the channel's epoch changed, the catch-up
   * after a gap failed, or history does not cover it. Events follow from `head.seq + 1` of
   * `head.epoch`.
   */
  readonly reset: (head: Position, cause: ResetCause) => void
}

export class EventBus extends Context.Service<EventBus, {
  /**
   * `idempotencyKey` names the event for the idempotency window (the publisher and its `id`):
   * a key seen before on the same channel returns the first publish's answer and publishes
   * nothing. Keys are per channel (on Redis they live in the channel's slot). The first
   * publish that finds no epoch for the channel makes one.
   */
  readonly publish: (draft: EventDraft, idempotencyKey: string) => Effect.Effect<Published, Unavailable>
  /**
   * `publish` for each item, one after another in the given order (a channel's events take
   * their seqs in that order), answered in that order; an item that could not be published is
   * its `Unavailable`, and never stops the others. Interpreters may take them in fewer steps:
   * on Redis, the items of one hash slot go in one script call.
   */
  readonly publishAll: (items: ReadonlyArray<PublishItem>) => Effect.Effect<ReadonlyArray<Result.Result<Published, Unavailable>>>
  /**
   * Delivers the channel's events to `listener` while the scope is open, and never skips one
   * silently: a seq that goes backwards under the same epoch (the store lost what it had
   * delivered) retires the epoch for a new one, agreed through the store, and resets; so does
   * a gap it cannot fill from history. Returns the channel's position as the subscription
   * knows it: every event after it reaches the listener (it was read once the subscription was
   * live, and follows what the listener is handed), so a subscriber needs no read of its own.
   */
  readonly subscribe: (channel: Channel, listener: BusListener) => Effect.Effect<() => Position, Unavailable, Scope.Scope>
  /**
   * The channel's position: its epoch (made now if it has none, the one its first publish
   * will use) and latest `seq` (0 before its first event).
   */
  readonly head: (channel: Channel) => Effect.Effect<Position, Unavailable>
  /**
   * The events after `from`, oldest first, or undefined when they cannot all be given: `from`
   * is of another epoch or ahead of the channel, or the history no longer reaches back to it.
   */
  readonly since: (channel: Channel, from: Position) => Effect.Effect<ReadonlyArray<Event> | undefined, Unavailable>
}>()("tidings/EventBus") {}
