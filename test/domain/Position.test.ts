// Specifies the rules every bus interpreter applies to a channel's position (epoch, seq): what
// a follower does with an incoming event, what a resume may replay, what a catch-up yields.
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import * as Channel from "../../src/domain/Channel.ts"
import type { Event } from "../../src/domain/Event.ts"
import { catchUp, covered, EPOCH_PATTERN, judge, replay, resumeFrom } from "../../src/domain/Position.ts"
import { newEpoch } from "../../src/interpreters/Follower.ts"
import type { EventId, EventRef, PatientRef } from "../../src/domain/Ref.ts"

const channel = Channel.patient("pt_alice_0001" as PatientRef)
const event = (epoch: string, seq: number): Event => ({
  channel,
  epoch,
  seq,
  id: `evt_${epoch}_${seq}` as EventId,
  kind: "appointment.updated",
  ref: "apt_00000001" as EventRef,
  at: "2026-11-22T10:00:00.000Z"
})
const at = (epoch: string, seq: number) => ({ epoch, seq })

describe("newEpoch", () => {
  it("makes 12 characters of [A-Za-z0-9], a different one each time", () => {
    const epochs = Array.from({ length: 1_000 }, newEpoch)
    for (const epoch of epochs) expect(epoch).toMatch(EPOCH_PATTERN)
    expect(new Set(epochs).size).toBe(1_000)
  })
})

describe("judge", () => {
  it("delivers the next seq of the same epoch", () => {
    expect(judge(at("Aaaaaaaa", 4), at("Aaaaaaaa", 5), undefined)).toBe("deliver")
  })
  it("calls a skipped seq a gap", () => {
    expect(judge(at("Aaaaaaaa", 4), at("Aaaaaaaa", 7), undefined)).toBe("gap")
  })
  it("calls a seq at or below the last one stale (a duplicate, or the store rolled back)", () => {
    expect(judge(at("Aaaaaaaa", 4), at("Aaaaaaaa", 4), undefined)).toBe("stale")
    expect(judge(at("Aaaaaaaa", 4), at("Aaaaaaaa", 1), undefined)).toBe("stale")
  })
  it("calls any other epoch a new one, unless it is the one just retired", () => {
    expect(judge(at("Aaaaaaaa", 4), at("Bbbbbbbb", 1), undefined)).toBe("epoch")
    expect(judge(at("Aaaaaaaa", 4), at("Bbbbbbbb", 9), "Cccccccc")).toBe("epoch")
    expect(judge(at("Bbbbbbbb", 4), at("Aaaaaaaa", 5), "Aaaaaaaa")).toBe("retired")
  })
})

describe("covered", () => {
  it("says an event at or below the position, in its epoch, was already handed over", () => {
    expect(covered("Aaaaaaaa", 4, at("Aaaaaaaa", 4))).toBe(true)
    expect(covered("Aaaaaaaa", 4, at("Aaaaaaaa", 1))).toBe(true)
    expect(covered("Aaaaaaaa", 4, at("Aaaaaaaa", 5))).toBe(false)
  })
  it("never covers an event of another epoch, whatever its seq", () => {
    expect(covered("Aaaaaaaa", 4, at("Bbbbbbbb", 1))).toBe(false)
  })
})

describe("resumeFrom", () => {
  const head = at("Aaaaaaaa", 7)
  it("starts a replay after `since` in the head's epoch, or in the epoch the client names", () => {
    expect(resumeFrom(head, 3, undefined)).toEqual(at("Aaaaaaaa", 3))
    expect(resumeFrom(head, 7, "Aaaaaaaa")).toEqual(at("Aaaaaaaa", 7))
  })
  it("has nothing to replay from without `since`, in another epoch, or ahead of the channel", () => {
    expect(resumeFrom(head, undefined, "Aaaaaaaa")).toBeUndefined()
    expect(resumeFrom(head, 3, "Bbbbbbbb")).toBeUndefined()
    expect(resumeFrom(head, 8, undefined)).toBeUndefined()
  })
})

describe("replay", () => {
  const history = [1, 2, 3, 4, 5].map((seq) => event("Aaaaaaaa", seq))
  it("gives every event after `from`, oldest first, in the current epoch", () => {
    expect(replay(at("Aaaaaaaa", 5), [...history].reverse(), at("Aaaaaaaa", 2))).toEqual(history.slice(2))
    expect(replay(at("Aaaaaaaa", 5), history, at("Aaaaaaaa", 5))).toEqual([])
  })
  it("gives nothing for another epoch, a position ahead, or a gap the history does not cover", () => {
    expect(replay(at("Aaaaaaaa", 5), history, at("Bbbbbbbb", 2))).toBeUndefined()
    expect(replay(at("Aaaaaaaa", 5), history, at("Aaaaaaaa", 6))).toBeUndefined()
    expect(replay(at("Aaaaaaaa", 7), history, at("Aaaaaaaa", 2))).toBeUndefined()
    expect(replay(at("Aaaaaaaa", 5), history.slice(2), at("Aaaaaaaa", 1))).toBeUndefined()
  })
  it("never mixes epochs, and never gives a seq twice (a rolled-back history)", () => {
    const mixed = [event("Bbbbbbbb", 1), ...history, event("Aaaaaaaa", 3)]
    expect(replay(at("Bbbbbbbb", 1), mixed, at("Bbbbbbbb", 0))).toEqual([event("Bbbbbbbb", 1)])
    expect(replay(at("Aaaaaaaa", 5), mixed, at("Aaaaaaaa", 2))).toBeUndefined()
  })
  it("when it gives events, they are exactly from + 1 … head (any history)", () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.constantFrom("Aaaaaaaa", "Bbbbbbbb"), fc.integer({ min: 1, max: 12 }))),
      fc.integer({ min: 0, max: 12 }),
      fc.integer({ min: 0, max: 12 }),
      (entries, from, head) => {
        const events = replay(at("Aaaaaaaa", head), entries.map(([e, s]) => event(e, s)), at("Aaaaaaaa", from))
        const complete = Array.from({ length: Math.max(0, head - from) }, (_, i) => `Aaaaaaaa:${from + 1 + i}`)
        expect([undefined, complete]).toContainEqual(events?.map((e) => `${e.epoch}:${e.seq}`))
      }
    ))
  })
})

describe("catchUp", () => {
  const history = [1, 2, 3, 4, 5].map((seq) => event("Aaaaaaaa", seq))
  it("delivers what was missed when the history covers it", () => {
    expect(catchUp(at("Aaaaaaaa", 3), at("Aaaaaaaa", 5), history)).toEqual({ _tag: "Deliver", events: history.slice(3) })
  })
  it("resets to the head when the epoch changed, or the history does not reach back", () => {
    expect(catchUp(at("Aaaaaaaa", 3), at("Bbbbbbbb", 2), history)).toEqual({ _tag: "Reset", head: at("Bbbbbbbb", 2), cause: "epoch" })
    expect(catchUp(at("Aaaaaaaa", 3), at("Aaaaaaaa", 9), history)).toEqual({ _tag: "Reset", head: at("Aaaaaaaa", 9), cause: "history" })
  })
  it("calls a head behind what was delivered, in the same epoch, a rollback", () => {
    expect(catchUp(at("Aaaaaaaa", 5), at("Aaaaaaaa", 2), history)).toEqual({ _tag: "Rollback" })
  })
})
