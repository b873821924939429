// The EventBus contract, for every interpreter: per-channel (epoch, seq) from (new epoch, 1),
// idempotent publishes, delivery in seq order to every open subscription (and none after),
// bounded `since` history, and no silent loss when the store loses or rolls back its state.
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, type Layer, Result, Scope } from "effect"
import type { Channel } from "../../src/domain/Channel.ts"
import type { Event, EventDraft } from "../../src/domain/Event.ts"
import { HISTORY_PER_CHANNEL } from "../../src/domain/Limits.ts"
import type { Position, ResetCause } from "../../src/domain/Position.ts"
import { type BusListener, EventBus } from "../../src/services/EventBus.ts"
import { channel, draft, fresh, until } from "./support.ts"

const EPOCH = /^[A-Za-z0-9]{8,16}$/
const anyEpoch: string = expect.stringMatching(EPOCH)

/** What the bus is expected to deliver for a draft published as `seq` (of `epoch`). */
const event = (d: EventDraft, seq: number, epoch: string = anyEpoch): Event => ({ ...d, epoch, seq })

/** What a failing store does to a channel, done from outside the bus (as Redis would). */
export class BusFaults extends Context.Service<BusFaults, {
  /** The channel's epoch, seq, history and idempotency records are gone (restart without persistence). */
  readonly lose: (channel: Channel) => Effect.Effect<void>
  /** The channel's seq (and history) are set back to `seq`, its epoch kept (an older snapshot). */
  readonly rollback: (channel: Channel, seq: number) => Effect.Effect<void>
}>()("test/BusFaults") {}

interface Reset {
  readonly reset: Position
  readonly cause: ResetCause
}

const collect = (seen: Array<Event | Reset>): BusListener => ({
  event: (e) => void seen.push(e),
  reset: (head, cause) => void seen.push({ reset: head, cause })
})

export const suite = (name: string, makeLayer: () => Layer.Layer<EventBus | BusFaults, unknown>) =>
  describe(`EventBus contract (${name})`, () => {
    const withBus = <A, E>(body: (bus: EventBus["Service"]) => Effect.Effect<A, E, Scope.Scope | BusFaults>) =>
      Effect.scoped(Effect.flatMap(EventBus, body)).pipe(Effect.provide(makeLayer()))

    /** Everything delivered on `on` while `scope` is open: events and resets. */
    const listen = (bus: EventBus["Service"], on: Channel, scope?: Scope.Scope) =>
      Effect.gen(function*() {
        const seen: Array<Event | Reset> = []
        const subscribe = bus.subscribe(on, collect(seen))
        yield* scope === undefined ? subscribe : Scope.provide(scope)(subscribe)
        return seen
      })

    const seqOf = (bus: EventBus["Service"], on: Channel) => Effect.map(bus.head(on), (head) => head.seq)
    const from = (seq: number, epoch: string) => ({ epoch, seq })

    /** Publishes each draft under a key of its own; returns the assigned seqs. */
    const publishAll = (bus: EventBus["Service"], drafts: ReadonlyArray<EventDraft>) =>
      Effect.forEach(drafts, (d) => Effect.map(bus.publish(d, fresh("key")), (p) => p.seq))

    it.live("head is seq 0 before a channel's first event", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          expect(yield* seqOf(bus, channel())).toBe(0)
        })
      ))

    it.live("publish assigns seq 1, 2, 3 on each channel, independently of other channels", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const [a, b] = [channel(), channel()]
          const order = [a, b, a, a, b]
          const answers = yield* Effect.forEach(order, (on) => {
            const d = draft(on)
            return Effect.map(bus.publish(d, fresh("key")), (published) => ({ published, d }))
          })
          expect(answers.map(({ published }) => published.seq)).toEqual([1, 1, 2, 3, 2])
          for (const { published, d } of answers) {
            expect(published).toEqual({ id: d.id, channel: d.channel, epoch: anyEpoch, seq: published.seq, fresh: true })
          }
          expect(yield* seqOf(bus, a)).toBe(3)
          expect(yield* seqOf(bus, b)).toBe(2)
        })
      ))

    it.live("a repeated idempotency key returns the first answer with fresh: false, and delivers nothing more", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const on = channel()
          const seen = yield* listen(bus, on)
          const first = draft(on)
          const key = fresh("key")
          expect(yield* bus.publish(first, key)).toEqual({ id: first.id, channel: on, epoch: anyEpoch, seq: 1, fresh: true })
          expect(yield* bus.publish(first, key)).toEqual({ id: first.id, channel: on, epoch: anyEpoch, seq: 1, fresh: false })
          expect(yield* seqOf(bus, on)).toBe(1)
          // Delivery is in seq order, so once the next event has arrived a repeat would have too.
          const next = draft(on)
          expect((yield* bus.publish(next, fresh("key"))).seq).toBe(2)
          yield* until(() => seen.length >= 2, "the second event is delivered")
          expect(seen).toEqual([event(first, 1), event(next, 2)])
        })
      ))

    // The contract: "a key seen before returns the first publish's answer and publishes nothing",
    // whichever channel the repeat names (the key is the publisher and its event id). Fails on
    // Redis today: its idempotency record is keyed per channel (Keys.idempotency(channel, key)).
    it.live("keeps idempotency keys per channel: the same key on another channel is another event", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const [a, b] = [channel(), channel()]
          const first = draft(a)
          const key = fresh("key")
          yield* bus.publish(first, key)
          const other = draft(b)
          expect(yield* bus.publish(other, key)).toEqual({ id: other.id, channel: b, epoch: anyEpoch, seq: 1, fresh: true })
          // And a repeat on the first channel still gets the first answer, with the first id.
          expect(yield* bus.publish({ ...draft(a) }, key)).toEqual({ id: first.id, channel: a, epoch: anyEpoch, seq: 1, fresh: false })
          expect(yield* seqOf(bus, a)).toBe(1)
        })
      ))

    it.live("publishAll answers each item as publish would one after another, in the given order", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const [a, b] = [channel(), channel()]
          const seenA = yield* listen(bus, a)
          const before = draft(a)
          const beforeKey = fresh("key")
          yield* bus.publish(before, beforeKey)
          // Interleaved channels; a key already used (before the call) and one used twice in it.
          const twice = fresh("key")
          const items = [
            { draft: draft(a), idempotencyKey: fresh("key") },
            { draft: draft(b), idempotencyKey: twice },
            { draft: { ...draft(a) }, idempotencyKey: beforeKey },
            { draft: draft(a), idempotencyKey: fresh("key") },
            { draft: draft(b), idempotencyKey: twice },
            { draft: draft(b), idempotencyKey: fresh("key") }
          ]
          const answers = yield* bus.publishAll(items)
          expect(answers.map((r) => Result.isSuccess(r) ? [r.success.seq, r.success.fresh, r.success.id] : r.failure)).toEqual([
            [2, true, items[0]!.draft.id],
            [1, true, items[1]!.draft.id],
            [1, false, before.id],
            [3, true, items[3]!.draft.id],
            [1, false, items[1]!.draft.id],
            [2, true, items[5]!.draft.id]
          ])
          expect(yield* bus.publishAll([])).toEqual([])
          yield* until(() => seenA.length >= 3, "channel a's three events are delivered")
          expect(seenA).toEqual([event(before, 1), event(items[0]!.draft, 2), event(items[3]!.draft, 3)])
          expect(yield* seqOf(bus, b)).toBe(2)
        })
      ))

    it.live("different idempotency keys with the same event id publish two events", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const on = channel()
          const d = draft(on)
          const one = yield* bus.publish(d, fresh("key"))
          const two = yield* bus.publish(d, fresh("key"))
          expect([one.seq, one.fresh, two.seq, two.fresh]).toEqual([1, true, 2, true])
          expect(yield* bus.since(on, from(0, one.epoch))).toEqual([event(d, 1, one.epoch), event(d, 2, one.epoch)])
        })
      ))

    it.live("a subscriber receives its channel's events, whole and in seq order, and no other channel's", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const [on, other] = [channel(), channel()]
          const seen = yield* listen(bus, on)
          const drafts = Array.from({ length: 5 }, () => draft(on))
          yield* publishAll(bus, [drafts[0]!, drafts[1]!, draft(other), drafts[2]!, drafts[3]!, draft(other), drafts[4]!])
          yield* until(() => seen.length >= 5, "five events are delivered")
          expect(seen).toEqual(drafts.map((d, i) => event(d, i + 1)))
        })
      ))

    it.live("subscribe answers the channel's position, and every event after it reaches the listener", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const on = channel()
          const fresh0 = yield* bus.subscribe(channel(), collect([]))
          expect(fresh0()).toEqual({ epoch: anyEpoch, seq: 0 })
          const [first] = yield* Effect.forEach([draft(on), draft(on)], (d) => bus.publish(d, fresh("key")))
          const seen: Array<Event | Reset> = []
          const position = yield* bus.subscribe(on, collect(seen))
          expect(position()).toEqual({ epoch: first!.epoch, seq: 2 })
          const later = [draft(on), draft(on)]
          yield* publishAll(bus, later)
          yield* until(() => seen.length >= 2, "the two later events are delivered")
          expect(seen).toEqual(later.map((d, i) => event(d, i + 3, first!.epoch)))
          // It follows what the listener is handed.
          expect(position()).toEqual({ epoch: first!.epoch, seq: 4 })
        })
      ))

    it.live("two subscribers on one channel both receive every event", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const on = channel()
          const first = yield* listen(bus, on)
          const second = yield* listen(bus, on)
          const drafts = Array.from({ length: 3 }, () => draft(on))
          yield* publishAll(bus, drafts)
          yield* until(() => first.length >= 3 && second.length >= 3, "both subscribers hear three events")
          const expected = drafts.map((d, i) => event(d, i + 1))
          expect(first).toEqual(expected)
          expect(second).toEqual(expected)
        })
      ))

    it.live("a subscription delivers nothing once its scope has closed", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const [on, witnessChannel] = [channel(), channel()]
          const scope = yield* Scope.fork(yield* Scope.Scope)
          const seen = yield* listen(bus, on, scope)
          const before = draft(on)
          yield* bus.publish(before, fresh("key"))
          yield* until(() => seen.length >= 1, "the event before closing is delivered")
          yield* Scope.close(scope, Exit.void)

          const witness = yield* listen(bus, witnessChannel)
          yield* bus.publish(draft(on), fresh("key"))
          // Published after the one above: once the witness hears it, a late delivery would have come.
          yield* bus.publish(draft(witnessChannel), fresh("key"))
          yield* until(() => witness.length >= 1, "the witness hears its event")
          expect(seen).toEqual([event(before, 1)])
          expect(yield* seqOf(bus, on)).toBe(2)
        })
      ))

    it.live("since(channel, k) returns the events after k, oldest first", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const on = channel()
          const drafts = Array.from({ length: 5 }, () => draft(on))
          yield* publishAll(bus, drafts)
          const { epoch } = yield* bus.head(on)
          const all = drafts.map((d, i) => event(d, i + 1, epoch))
          expect(yield* bus.since(on, from(0, epoch))).toEqual(all)
          expect(yield* bus.since(on, from(2, epoch))).toEqual(all.slice(2))
          expect(yield* bus.since(on, from(5, epoch))).toEqual([])
          // Ahead of the channel, or of another epoch: nothing can be promised.
          expect(yield* bus.since(on, from(6, epoch))).toBeUndefined()
          expect(yield* bus.since(on, from(2, "k3Jd92Lq"))).toBeUndefined()
        })
      ))

    it.live("since(channel, 0) on a channel without events is empty, in the epoch its head names", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const on = channel()
          const { epoch } = yield* bus.head(on)
          expect(yield* bus.since(on, from(0, epoch))).toEqual([])
        })
      ))

    it.live(`since reaches back over the last ${HISTORY_PER_CHANNEL} events only, and says so past them`, () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const on = channel()
          const total = HISTORY_PER_CHANNEL + 5
          const drafts = Array.from({ length: total }, () => draft(on))
          expect(yield* publishAll(bus, drafts)).toEqual(drafts.map((_, i) => i + 1))
          const { epoch } = yield* bus.head(on)
          const all = drafts.map((d, i) => event(d, i + 1, epoch))
          expect(yield* bus.since(on, from(0, epoch))).toBeUndefined()
          expect(yield* bus.since(on, from(total - HISTORY_PER_CHANNEL - 1, epoch))).toBeUndefined()
          expect(yield* bus.since(on, from(total - HISTORY_PER_CHANNEL, epoch))).toEqual(all.slice(total - HISTORY_PER_CHANNEL))
          expect(yield* bus.since(on, from(total - 5, epoch))).toEqual(all.slice(total - 5))
        })
      ))

    it.live("an epoch is made with a channel's first seq, and every event of that life carries it", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const on = channel()
          const seen = yield* listen(bus, on)
          const first = yield* bus.publish(draft(on), fresh("key"))
          expect(first.epoch).toMatch(EPOCH)
          expect(first.seq).toBe(1)
          const second = yield* bus.publish(draft(on), fresh("key"))
          expect([second.epoch, second.seq]).toEqual([first.epoch, 2])
          expect(yield* bus.head(on)).toEqual({ epoch: first.epoch, seq: 2 })
          yield* until(() => seen.length >= 2, "both events are delivered")
          expect(seen.map((e) => "epoch" in e && e.epoch)).toEqual([first.epoch, first.epoch])
          // Another channel lives its own life.
          expect((yield* bus.publish(draft(channel()), fresh("key"))).epoch).not.toBe(first.epoch)
        })
      ))

    it.live("a channel without events names, from its head, the epoch its first publish will use", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const on = channel()
          const head = yield* bus.head(on)
          expect(head).toEqual({ epoch: anyEpoch, seq: 0 })
          // A client that saved (epoch, 0) then sees seq 1 of that same epoch: no reset.
          expect(yield* bus.publish(draft(on), fresh("key"))).toMatchObject({ epoch: head.epoch, seq: 1 })
        })
      ))

    it.live("a channel whose state is lost gets a new epoch from seq 1, and its subscribers a reset before it", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const on = channel()
          const seen = yield* listen(bus, on)
          const before = yield* Effect.forEach([draft(on), draft(on), draft(on)], (d) => bus.publish(d, fresh("key")))
          yield* until(() => seen.length >= 3, "three events are delivered")
          yield* (yield* BusFaults).lose(on)
          const d = draft(on)
          const after = yield* bus.publish(d, fresh("key"))
          expect(after.seq).toBe(1)
          expect(after.epoch).toMatch(EPOCH)
          expect(after.epoch).not.toBe(before[0]!.epoch)
          yield* until(() => seen.length >= 5, "a reset and the new event are delivered")
          expect(seen.slice(3)).toEqual([{ reset: { epoch: after.epoch, seq: 0 }, cause: "epoch" }, event(d, 1, after.epoch)])
          // A resume from the old life is no resume.
          expect(yield* bus.since(on, from(3, before[0]!.epoch))).toBeUndefined()
        })
      ))

    it.live("a seq forced backwards under the same epoch is detected: a new epoch, and a reset, never a silent drop", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const on = channel()
          const seen = yield* listen(bus, on)
          const published = yield* Effect.forEach(Array.from({ length: 5 }, () => draft(on)), (d) => bus.publish(d, fresh("key")))
          const old = published[0]!.epoch
          yield* until(() => seen.length >= 5, "five events are delivered")
          yield* (yield* BusFaults).rollback(on, 2)
          // The store does not know: it hands out seq 3 of the old epoch again.
          expect(yield* bus.publish(draft(on), fresh("key"))).toMatchObject({ epoch: old, seq: 3 })
          yield* until(() => seen.length >= 6, "a reset is delivered")
          const reset = seen[5] as Reset
          expect(reset.cause).toBe("rollback")
          expect(reset.reset.epoch).toMatch(EPOCH)
          expect(reset.reset.epoch).not.toBe(old)
          expect(reset.reset.seq).toBe(3)
          expect(yield* bus.head(on)).toEqual(reset.reset)
          // Live again in the new epoch.
          const d = draft(on)
          expect(yield* bus.publish(d, fresh("key"))).toMatchObject({ epoch: reset.reset.epoch, seq: 4 })
          yield* until(() => seen.length >= 7, "the next event is delivered")
          expect(seen[6]).toEqual(event(d, 4, reset.reset.epoch))
          expect(yield* bus.since(on, from(3, old))).toBeUndefined()
        })
      ))

    it.live("two followers that detect the same rollback agree on one new epoch", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const on = channel()
          // Two subscriptions judge and retire independently, as two nodes do.
          const [a, b] = [yield* listen(bus, on), yield* listen(bus, on)]
          yield* publishAll(bus, [draft(on), draft(on), draft(on)])
          yield* until(() => a.length >= 3 && b.length >= 3, "both hear three events")
          yield* (yield* BusFaults).rollback(on, 1)
          yield* bus.publish(draft(on), fresh("key"))
          yield* until(() => a.length >= 4 && b.length >= 4, "both are reset")
          const [ra, rb] = [a[3] as Reset, b[3] as Reset]
          expect(ra.reset.epoch).toBe(rb.reset.epoch)
          expect((yield* bus.head(on)).epoch).toBe(ra.reset.epoch)
          // One retirement: the next event is in that epoch, for both.
          const d = draft(on)
          const next = yield* bus.publish(d, fresh("key"))
          expect(next.epoch).toBe(ra.reset.epoch)
          yield* until(() => a.length >= 5 && b.length >= 5, "both hear the next event")
          expect([a[4], b[4]]).toEqual([event(d, next.seq, next.epoch), event(d, next.seq, next.epoch)])
        })
      ))
  })
