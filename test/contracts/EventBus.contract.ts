// The EventBus contract, for every interpreter: per-channel seq from 1, idempotent publishes,
// delivery in seq order to every open subscription (and none after), bounded `since` history.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, type Layer, Scope } from "effect"
import type { Channel } from "../../src/domain/Channel.ts"
import type { Event, EventDraft } from "../../src/domain/Event.ts"
import { HISTORY_PER_CHANNEL } from "../../src/domain/Limits.ts"
import { EventBus } from "../../src/services/EventBus.ts"
import { channel, draft, fresh, until } from "./support.ts"

/** What the bus is expected to deliver for a draft published as `seq`. */
const event = (d: EventDraft, seq: number): Event => ({ ...d, seq })

export const suite = (name: string, makeLayer: () => Layer.Layer<EventBus, unknown>) =>
  describe(`EventBus contract (${name})`, () => {
    const withBus = <A, E>(body: (bus: EventBus["Service"]) => Effect.Effect<A, E, Scope.Scope>) =>
      Effect.scoped(Effect.flatMap(EventBus, body)).pipe(Effect.provide(makeLayer()))

    /** Everything delivered on `on` while `scope` is open. */
    const listen = (bus: EventBus["Service"], on: Channel, scope?: Scope.Scope) =>
      Effect.gen(function*() {
        const seen: Array<Event> = []
        const subscribe = bus.subscribe(on, (e) => void seen.push(e))
        yield* scope === undefined ? subscribe : Scope.provide(scope)(subscribe)
        return seen
      })

    /** Publishes each draft under a key of its own; returns the assigned seqs. */
    const publishAll = (bus: EventBus["Service"], drafts: ReadonlyArray<EventDraft>) =>
      Effect.forEach(drafts, (d) => Effect.map(bus.publish(d, fresh("key")), (p) => p.seq))

    it.live("lastSeq is 0 before a channel's first event", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          expect(yield* bus.lastSeq(channel())).toBe(0)
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
            expect(published).toEqual({ id: d.id, channel: d.channel, seq: published.seq, fresh: true })
          }
          expect(yield* bus.lastSeq(a)).toBe(3)
          expect(yield* bus.lastSeq(b)).toBe(2)
        })
      ))

    it.live("a repeated idempotency key returns the first answer with fresh: false, and delivers nothing more", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const on = channel()
          const seen = yield* listen(bus, on)
          const first = draft(on)
          const key = fresh("key")
          expect(yield* bus.publish(first, key)).toEqual({ id: first.id, channel: on, seq: 1, fresh: true })
          expect(yield* bus.publish(first, key)).toEqual({ id: first.id, channel: on, seq: 1, fresh: false })
          expect(yield* bus.lastSeq(on)).toBe(1)
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
          expect(yield* bus.publish(other, key)).toEqual({ id: other.id, channel: b, seq: 1, fresh: true })
          // And a repeat on the first channel still gets the first answer, with the first id.
          expect(yield* bus.publish({ ...draft(a) }, key)).toEqual({ id: first.id, channel: a, seq: 1, fresh: false })
          expect(yield* bus.lastSeq(a)).toBe(1)
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
          expect(yield* bus.since(on, 0)).toEqual([event(d, 1), event(d, 2)])
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

    it.live("subscribe answers the channel's seq, and every event after it reaches the listener", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const on = channel()
          const fresh0 = yield* bus.subscribe(channel(), () => undefined)
          expect(fresh0()).toBe(0)
          yield* publishAll(bus, [draft(on), draft(on)])
          const seen: Array<Event> = []
          const seq = yield* bus.subscribe(on, (e) => void seen.push(e))
          expect(seq()).toBe(2)
          const later = [draft(on), draft(on)]
          yield* publishAll(bus, later)
          yield* until(() => seen.length >= 2, "the two later events are delivered")
          expect(seen).toEqual(later.map((d, i) => event(d, i + 3)))
          // It follows what the listener is handed.
          expect(seq()).toBe(4)
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
          expect(yield* bus.lastSeq(on)).toBe(2)
        })
      ))

    it.live("since(channel, k) returns the events after k, oldest first", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const on = channel()
          const drafts = Array.from({ length: 5 }, () => draft(on))
          yield* publishAll(bus, drafts)
          const all = drafts.map((d, i) => event(d, i + 1))
          expect(yield* bus.since(on, 0)).toEqual(all)
          expect(yield* bus.since(on, 2)).toEqual(all.slice(2))
          expect(yield* bus.since(on, 5)).toEqual([])
        })
      ))

    it.live("since(channel, 0) on a channel without events is empty", () =>
      withBus((bus) =>
        Effect.gen(function*() {
          expect(yield* bus.since(channel(), 0)).toEqual([])
        })
      ))

    it.live(`since reaches back over the last ${HISTORY_PER_CHANNEL} events only, and says so past them`, () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const on = channel()
          const total = HISTORY_PER_CHANNEL + 5
          const drafts = Array.from({ length: total }, () => draft(on))
          expect(yield* publishAll(bus, drafts)).toEqual(drafts.map((_, i) => i + 1))
          const all = drafts.map((d, i) => event(d, i + 1))
          expect(yield* bus.since(on, 0)).toBeUndefined()
          expect(yield* bus.since(on, total - HISTORY_PER_CHANNEL - 1)).toBeUndefined()
          expect(yield* bus.since(on, total - HISTORY_PER_CHANNEL)).toEqual(all.slice(total - HISTORY_PER_CHANNEL))
          expect(yield* bus.since(on, total - 5)).toEqual(all.slice(total - 5))
        })
      ))
  })
