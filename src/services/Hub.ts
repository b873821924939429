// This node's fan-out, as the sessions see it: a socket's subscription joins a channel and
// is handed every event (or reset) of it from then on, without waiting on any socket.
// Implemented in programs/Hub.ts over the EventBus.
import { Context, type Effect } from "effect"
import type { Channel } from "../domain/Channel.ts"
import type { Event } from "../domain/Event.ts"
import type { Unavailable } from "../domain/Errors.ts"
import type { Position } from "../domain/Position.ts"

/**
 * What became of one event at one socket: written, refused by a full window, or not sent
 * now (held back until `subscribed` is out, or already sent by a replay).
 */
export type Pushed = "sent" | "refused" | "none"

/** One socket's interest in one channel; neither method may block. */
export interface Subscriber {
  readonly push: (event: Event, frame: string) => Pushed
  /** The channel was reset to `head` (`frame` is its `reset` frame): delivery goes on from it. */
  readonly reset: (head: Position, frame: string) => Pushed
}

export interface Joined {
  /** Ends the subscriber's interest; running it again does nothing. */
  readonly leave: Effect.Effect<void>
  /**
   * The channel's position when the subscriber joined: every later event (or reset) reaches
   * it, so this is what its `subscribed` answer carries, without a read of the store.
   */
  readonly position: Position
}

/**
 * Guarantee: from the moment `join` succeeds until its `leave` runs, the subscriber is handed
 * every event of the channel after `position`, in order, each exactly once, or a reset to a
 * later head; a frame is encoded once per event, whatever the number of subscribers. One bus
 * subscription per channel with local subscribers, released when the last one leaves.
 */
export class Hub extends Context.Service<Hub, {
  /**
   * The subscriber receives the channel's events until it runs the `leave` it was given. A
   * returned effect rather than a Scope: a socket may hold 100 subscriptions for hours, and a
   * Scope (with its finalizer map) per subscription is memory held for nothing.
   */
  readonly join: (channel: Channel, subscriber: Subscriber) => Effect.Effect<Joined, Unavailable>
  readonly stats: () => { readonly channels: number; readonly subscribers: number }
}>()("tidings/Hub") {}
