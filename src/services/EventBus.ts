// Carries events to every node with a subscriber on their channel, the publishing node
// included. Publishing is one atomic step: idempotency on `id`, the next `seq` of the
// channel, the history for `since` recovery, and the fan-out, so `seq` order is delivery order.
import { Context, type Effect, type Scope } from "effect"
import type { Channel } from "../domain/Channel.ts"
import type { Accepted, Event, EventDraft } from "../domain/Event.ts"
import type { Unavailable } from "../domain/Errors.ts"

export interface Published extends Accepted {
  /** False when the `id` was already published within the idempotency window. */
  readonly fresh: boolean
}

/** Called for each event of the channel, in `seq` order; must not block. */
export type EventListener = (event: Event) => void

export class EventBus extends Context.Service<EventBus, {
  /**
   * `idempotencyKey` names the event for the idempotency window (the publisher and its `id`):
   * a key seen before on the same channel returns the first publish's answer and publishes
   * nothing. Keys are per channel (on Redis they live in the channel's slot).
   */
  readonly publish: (draft: EventDraft, idempotencyKey: string) => Effect.Effect<Published, Unavailable>
  /**
   * Delivers the channel's events to `listener` while the scope is open. Returns the
   * channel's seq as the subscription knows it: every event after it reaches the listener
   * (it was read once the subscription was live, and follows what the listener is handed),
   * so a new subscriber needs no read of its own.
   */
  readonly subscribe: (channel: Channel, listener: EventListener) => Effect.Effect<() => number, Unavailable, Scope.Scope>
  /** The channel's latest `seq` (0 before its first event). */
  readonly lastSeq: (channel: Channel) => Effect.Effect<number, Unavailable>
  /** The events after `seq`, or undefined when the history no longer reaches back that far. */
  readonly since: (channel: Channel, seq: number) => Effect.Effect<ReadonlyArray<Event> | undefined, Unavailable>
}>()("tidings/EventBus") {}
