// One bus subscription's delivery rules, written once for every interpreter over a narrow store
// (read head and history in one step; retire an epoch by compare-and-set). The transport hands
// it the channel's events as they come; the listener gets each event once, in order, or a
// reset: gaps are filled from history, a rollback retires the epoch, and nothing is skipped
// silently. While a store call is out, live events are held and judged after it.
import { Effect, Fiber, Schedule, type Scope } from "effect"
import type { Event } from "../domain/Event.ts"
import type { Unavailable } from "../domain/Errors.ts"
import { catchUp, judge, type Position, type ResetCause } from "../domain/Position.ts"
import type { BusListener } from "../services/EventBus.ts"
import * as Random from "../domain/Random.ts"

export interface ChannelStore {
  /** The channel's head and history (any order), read in one atomic step. */
  readonly read: Effect.Effect<{ readonly head: Position; readonly history: ReadonlyArray<Event> }, Unavailable>
  /**
   * Retires `expected` for a new random epoch, unless the channel's epoch is already another
   * one (a node that detected the same rollback first): answers the head after, so every
   * node that detects one rollback lands on the same epoch.
   */
  readonly rotate: (expected: string) => Effect.Effect<Position, Unavailable>
}

/** A store call right after a reconnect may meet a connection still coming back: a few tries. */
const RETRY = Schedule.exponential("100 millis", 2).pipe(Schedule.upTo({ times: 4 }))

const positionOf = (event: Event): Position => ({ epoch: event.epoch, seq: event.seq })

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
/** Characters in a new epoch: 12 of 62, about 71 bits, so two lives of a channel never share one. */
const EPOCH_LENGTH = 12

/** A fresh random epoch (domain/Position.ts's shape), from the platform's CSPRNG. */
export const newEpoch = (): string => {
  const bytes = Random.bytes(EPOCH_LENGTH * 2)
  let out = ""
  // Rejection sampling: 248 = 4 × 62, so every character is equally likely.
  for (const byte of bytes) {
    if (byte < 248) out += ALPHABET[byte % 62]
    if (out.length === EPOCH_LENGTH) return out
  }
  return out.length === EPOCH_LENGTH ? out : newEpoch()
}

export class Follower {
  private last: Position = { epoch: "", seq: 0 }
  /** The epoch this follower last left, whose late events were covered by the reset. */
  private retired: string | undefined = undefined
  /** Defined while a store call is out (or before `start`): live events wait here. */
  private held: Array<Event> | undefined = []
  /** A reconnect came while a store call was out: catch up again once it is done. */
  private again = false
  /**
   * Ids of the events a store read delivered (by seq), until pub/sub delivers past them. Pub/sub
   * and the store are different connections: the message of an event a catch-up already read
   * can still arrive after it, and is a repeat, not a store that forgot (a rollback).
   */
  private fromStore: Map<number, string> | undefined = undefined
  private closed = false
  private readonly store: ChannelStore
  private readonly listener: BusListener
  private readonly run: (effect: Effect.Effect<void>) => void

  constructor(store: ChannelStore, listener: BusListener, run: (effect: Effect.Effect<void>) => void) {
    this.store = store
    this.listener = listener
    this.run = run
  }

  /** Every event after this position reaches the listener. */
  position(): Position {
    return this.last
  }

  /** Goes live from `head`, read once the transport delivers: what arrived meanwhile is judged. */
  start(head: Position) {
    this.last = head
    this.drain()
  }

  receive(event: Event) {
    if (this.closed) return
    if (this.held !== undefined) this.held.push(event)
    else this.live(event)
  }

  /** The transport dropped and is back: fetch what was missed, in order, or reset. */
  catchUp() {
    if (this.closed) return
    // The call out may have read the store before what this reconnect missed.
    if (this.held !== undefined) return void (this.again = true)
    this.held = []
    this.run(this.catchingUp)
  }

  close() {
    this.closed = true
  }

  private live(event: Event) {
    switch (judge(this.last, event, this.retired)) {
      case "deliver":
        this.fromStore = undefined
        this.last = positionOf(event)
        this.listener.event(event)
        return
      case "retired":
        return
      case "epoch":
        // A new life of the channel: whatever came before it in that epoch, this node did not see.
        this.resetTo({ epoch: event.epoch, seq: event.seq - 1 }, "epoch")
        this.last = positionOf(event)
        this.listener.event(event)
        return
      case "gap":
        this.held = [event]
        this.run(this.catchingUp)
        return
      case "stale":
        // The message of an event a catch-up already delivered: a repeat, dropped.
        if (this.fromStore?.get(event.seq) === event.id) return
        // Pub/sub is in order and at most once: a seq at or below one delivered, live, means the
        // store forgot what it had handed out (a restored snapshot, a lagging replica).
        this.held = []
        this.run(this.rollback(this.last.epoch, event.seq))
        return
    }
  }

  /** After a store call: events held meanwhile, at or below the new position, were covered by it. */
  private drain() {
    const pending = this.held ?? []
    this.held = undefined
    for (let i = 0; i < pending.length; i++) {
      if (this.closed) return
      const event = pending[i]!
      const verdict = judge(this.last, event, this.retired)
      if (verdict === "stale" || verdict === "retired") continue
      this.live(event)
      if (this.held !== undefined) {
        // Another store call started: the rest waits for it.
        ;(this.held as Array<Event>).push(...pending.slice(i + 1))
        return
      }
    }
    if (this.again) {
      this.again = false
      this.catchUp()
    }
  }

  private resetTo(head: Position, cause: ResetCause) {
    this.fromStore = undefined
    if (head.epoch !== this.last.epoch) this.retired = this.last.epoch
    this.last = head
    this.listener.reset(head, cause)
  }

  // Built when needed (a reconnect, a gap): a node follows many channels that never need it.
  private get catchingUp(): Effect.Effect<void> {
    return Effect.suspend(() => this.store.read).pipe(
      Effect.retry(RETRY),
      Effect.result,
      Effect.map((read) => {
        if (this.closed) return
        if (read._tag === "Failure") {
          // Nothing can be promised about the gap: reset just before the first event that shows
          // one (or where delivery stands), and carry on live from there.
          const next = (this.held ?? []).find((e) => {
            const verdict = judge(this.last, e, this.retired)
            return verdict === "gap" || verdict === "epoch"
          })
          this.resetTo(next === undefined ? this.last : { epoch: next.epoch, seq: next.seq - 1 }, "catchup_failed")
          return this.drain()
        }
        const outcome = catchUp(this.last, read.success.head, read.success.history)
        switch (outcome._tag) {
          case "Deliver":
            for (const event of outcome.events) {
              ;(this.fromStore ??= new Map()).set(event.seq, event.id)
              this.last = positionOf(event)
              this.listener.event(event)
            }
            return this.drain()
          case "Reset":
            this.resetTo(outcome.head, outcome.cause)
            return this.drain()
          case "Rollback":
            return this.run(this.rollback(this.last.epoch, read.success.head.seq))
        }
      })
    )
  }

  private rollback(expected: string, seenSeq: number): Effect.Effect<void> {
    return Effect.suspend(() => this.store.rotate(expected)).pipe(
      Effect.retry(RETRY),
      Effect.result,
      Effect.map((rotated) => {
        if (this.closed) return
        // Could not retire the epoch: still never silent; reset to where the store stands.
        this.resetTo(rotated._tag === "Success" ? rotated.success : { epoch: expected, seq: seenSeq }, "rollback")
        this.drain()
      })
    )
  }
}

/**
 * A follower whose store calls run as fibers of the current context, and `stop`: silences it
 * and interrupts them. For a transport that holds one finalizer for all it set up.
 */
export const followWithStop = (store: ChannelStore, listener: BusListener): Effect.Effect<{ readonly follower: Follower; readonly stop: Effect.Effect<void> }> =>
  Effect.map(Effect.context<never>(), (context) => {
    // Made on the first store call: most channels never need one, and a node follows many.
    let fibers: Set<Fiber.Fiber<void>> | undefined
    const follower = new Follower(store, listener, (effect) => {
      const fiber = Effect.runForkWith(context)(effect)
      const running = (fibers ??= new Set())
      running.add(fiber)
      fiber.addObserver(() => running.delete(fiber))
    })
    const stop = Effect.suspend(() => {
      follower.close()
      return fibers === undefined ? Effect.void : Fiber.interruptAll([...fibers])
    })
    return { follower, stop }
  })

/** `followWithStop`, stopped when the scope closes. */
export const follow = (store: ChannelStore, listener: BusListener): Effect.Effect<Follower, never, Scope.Scope> =>
  Effect.flatMap(followWithStop(store, listener), ({ follower, stop }) => Effect.as(Effect.addFinalizer(() => stop), follower))
