// One channel of one session: it holds live frames back until its `subscribed` answer (and
// replay) is out, or while access is checked again, and drops what the client already has by
// (epoch, seq). Its care relationship's `until`, if any, is a due time on the node's Deadlines.
import { Effect, Metric } from "effect"
import { type Channel, print } from "../../domain/Channel.ts"
import type { Event } from "../../domain/Event.ts"
import { covered, type Position } from "../../domain/Position.ts"
import * as Wire from "../../domain/Wire.ts"
import type { Watched } from "../../services/Deadlines.ts"
import type { Pushed, Subscriber } from "../../services/Hub.ts"
import * as Metrics from "../Metrics.ts"
import type { Live } from "./Lifecycle.ts"

/** Deliveries made by `settle`, for the delivery counters (the hub counts its own). */
export interface Tally {
  sent: number
  refused: number
}

const count = (tally: Tally, pushed: Pushed) => {
  if (pushed === "sent") tally.sent += 1
  else if (pushed === "refused") tally.refused += 1
}

/** Something the hub handed over while the subscription held back: an event, or a reset to a head. */
type Held = { readonly event: Event; readonly frame: string } | { readonly head: Position; readonly frame: string }

export class Subscription implements Subscriber, Watched {
  private held: Array<Held> | undefined = []
  // The last position the client was told (by an event, `subscribed` or `reset`), as two
  // fields: an object per delivery would be an allocation on the fan-out's hot path.
  private epoch = ""
  private seq = 0
  /** Leaves the hub; set once joined. */
  leave: Effect.Effect<void> | undefined = undefined
  /** When the care relationship it rests on runs out (Infinity: it rests on none). */
  until = Number.POSITIVE_INFINITY
  /**
   * Set when `subscribed` goes out. Until then the subscribe in flight owns every check of its
   * access (re-checks skip it), so nothing can answer the client before it does.
   */
  answered = false

  readonly channel: Channel
  private readonly session: Live

  constructor(session: Live, channel: Channel) {
    this.session = session
    this.channel = channel
  }

  push(event: Event, frame: string): Pushed {
    if (this.held === undefined) return this.forward(event, frame)
    this.held.push({ event, frame })
    return "none"
  }

  reset(head: Position, frame: string): Pushed {
    if (this.held === undefined) return this.resetTo(head, frame)
    this.held.push({ head, frame })
    return "none"
  }

  dueAt() {
    return this.until
  }

  /** The care relationship's `until` came: access is checked again. */
  expire() {
    this.session.reauthorize(this.channel)
  }

  /** Holds events back while access is being checked again; `settle` releases them. */
  pause() {
    this.held ??= []
  }

  /**
   * Sends what was held back, then goes live: after `subscribed` at `start` (and its replay),
   * or after a re-check (no `start`: the client's position stands).
   */
  settle(start?: Position, replay: ReadonlyArray<Event> = []): Tally {
    const tally: Tally = { sent: 0, refused: 0 }
    for (const event of replay) count(tally, this.forward(event, Wire.event(event)))
    if (start !== undefined && (start.epoch !== this.epoch || start.seq > this.seq)) this.moveTo(start.epoch, start.seq)
    const pending = this.held ?? []
    this.held = undefined
    for (const item of pending) {
      if ("event" in item) count(tally, this.forward(item.event, item.frame))
      else this.resetTo(item.head, item.frame)
    }
    return tally
  }

  private moveTo(epoch: string, seq: number) {
    this.epoch = epoch
    this.seq = seq
  }

  private resetTo(head: Position, frame: string): Pushed {
    this.moveTo(head.epoch, head.seq)
    return this.offer(frame, undefined)
  }

  private forward(event: Event, frame: string): Pushed {
    // The bus may hand over an event the replay already sent: (epoch, seq) makes it idempotent.
    // The bus resets before any event of a new epoch, so an epoch change never arrives bare.
    if (covered(this.epoch, this.seq, event)) return "none"
    this.moveTo(event.epoch, event.seq)
    return this.offer(frame, event.channel)
  }

  private offer(frame: string, channel: Channel | undefined): Pushed {
    if (this.session.transport.outbox.offer(frame)) return "sent"
    // The socket is ending as too slow. Nothing waits on it here (the publisher and the other
    // subscribers carry on); it is audited once, as the session ends.
    if (channel !== undefined) this.session.refused ??= channel
    return "refused"
  }
}

/** Arms (or re-arms) the re-check due when the subscription's care relationship runs out. */
export const expireAt = (live: Live, subscription: Subscription, until: number) => {
  // Dropped while its access was being checked: nothing to arm.
  if (live.subscriptions.get(print(subscription.channel)) !== subscription) return
  subscription.until = until
  if (Number.isFinite(until)) live.services.deadlines.watch(subscription)
  else live.services.deadlines.unwatch(subscription)
}

/** Ends the subscription (if held): off the Deadlines, out of the hub. */
export const drop = (live: Live, key: string): Effect.Effect<void> => {
  const subscription = live.subscriptions.get(key)
  if (subscription === undefined) return Effect.void
  live.subscriptions.delete(key)
  live.services.deadlines.unwatch(subscription)
  const left = Metric.modify(Metrics.subscriptions, -1)
  return subscription.leave === undefined ? left : Effect.andThen(left, subscription.leave)
}
