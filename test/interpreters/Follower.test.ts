// The follower both buses use: after a catch-up from the store, the pub/sub message of an event
// the catch-up already delivered is a repeat (pub/sub and the store are different connections),
// while a seq delivered live coming again is a store that forgot (a rollback, reset).
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Channel from "../../src/domain/Channel.ts"
import type { Event } from "../../src/domain/Event.ts"
import type { Position } from "../../src/domain/Position.ts"
import type { EventId, EventRef, PatientRef } from "../../src/domain/Ref.ts"
import { follow } from "../../src/interpreters/Follower.ts"

const EPOCH = "ep0000000001"
const on = Channel.patient("pt_follow_0001" as PatientRef)
const event = (seq: number, id = `evt_${seq}`): Event => ({
  id: id as EventId, channel: on, kind: "result.available", ref: "res_00000001" as EventRef, at: "2026-12-07T08:00:00.000Z", epoch: EPOCH, seq
})

/** A store whose head and history the test sets, counting rotations. */
const storeOf = () => {
  const state = { head: { epoch: EPOCH, seq: 0 } as Position, history: [] as Array<Event>, rotations: 0 }
  const store = {
    read: Effect.sync(() => ({ head: state.head, history: state.history })),
    rotate: () => Effect.sync((): Position => {
      state.rotations += 1
      return { epoch: "ep0000000002", seq: state.head.seq }
    })
  }
  return { state, store }
}

const settle = Effect.repeat(Effect.yieldNow, { times: 20 })

/**
 * A follower at seq 1 whose subscriber reconnected while event 2 was published: its catch-up
 * has delivered event 2 from history. `seen` holds seqs delivered and reset causes.
 */
const caughtUpToTwo = Effect.gen(function*() {
  const { state, store } = storeOf()
  const seen: Array<number | string> = []
  const follower = yield* follow(store, { event: (e) => void seen.push(e.seq), reset: (_, cause) => void seen.push(cause) })
  follower.start({ epoch: EPOCH, seq: 1 })
  state.head = { epoch: EPOCH, seq: 2 }
  state.history = [event(1), event(2)]
  follower.catchUp()
  yield* settle
  return { state, follower, seen }
})

describe("follow", () => {
  it.effect("drops the late pub/sub message of an event a catch-up delivered, and resets on none", () =>
    Effect.scoped(Effect.gen(function*() {
      const { state, follower, seen } = yield* caughtUpToTwo
      // Its pub/sub message arrives after the catch-up delivered it, then the next one.
      follower.receive(event(2))
      follower.receive(event(3))
      yield* settle
      expect(seen).toEqual([2, 3])
      expect(state.rotations).toBe(0)
    })))

  it.effect("still takes a delivered seq coming again with another event as a rollback", () =>
    Effect.scoped(Effect.gen(function*() {
      const { state, follower, seen } = yield* caughtUpToTwo
      // The store forgot event 2 and gave its seq to another event.
      follower.receive(event(2, "evt_other"))
      yield* settle
      expect(seen).toEqual([2, "rollback"])
      expect(state.rotations).toBe(1)
    })))
})
