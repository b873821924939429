// The fault-injection suite's frame checks on hand-made frame logs: what they accept (consecutive
// seqs, a recovered re-subscribe, a gap after an explicit signal) and what they refuse, so a
// passing fault run cannot be a vacuous one.
import { describe, expect, it } from "vitest"
import { RECHECK_BOUND_MS } from "../../src/services/Sessions.ts"
import { BOUND_MS } from "./bounds.ts"
import type { Received } from "./client.ts"
import { replay, type SessionFacts } from "./invariants.ts"

const CHANNEL = "patient:pt_check_0001"

const facts = (overrides: Partial<SessionFacts> = {}): SessionFacts => ({
  name: "S1 (clinician C0 on node a)",
  role: "clinician",
  sinces: new Map([["s1", undefined], ["s2", 4]]),
  revokedAt: [],
  careEndedAt: new Map(),
  careGrantedAt: new Map(),
  label: (channel) => channel,
  ...overrides
})

const at = (ms: number, frame: object): Received => ({ at: ms, frame })
const subscribed = (ms: number, id: string, seq: number, recovered: boolean) => at(ms, { type: "subscribed", id, channel: CHANNEL, seq, recovered })
const event = (ms: number, seq: number) => at(ms, { type: "event", channel: CHANNEL, seq })

describe("the frame checks of the fault-injection suite", () => {
  it("hold the gateway to the stated bound: its own re-check bound is within BOUND_MS", () => {
    expect(BOUND_MS).toBe(20_000)
    expect(RECHECK_BOUND_MS).toBeLessThanOrEqual(BOUND_MS)
  })

  it("accept consecutive seqs after subscribed.seq, and a recovered re-subscribe continuing after since", () => {
    const live = replay(facts(), [
      subscribed(0, "s1", 2, false), event(1, 3), event(2, 4),
      at(3, { type: "unsubscribed", id: "u1", channel: CHANNEL }),
      subscribed(4, "s2", 6, true), event(5, 5), event(6, 6), event(7, 7)
    ])
    expect(live.get(CHANNEL)?.expected).toBe(8)
  })

  it("refuse a gap within one subscription", () => {
    expect(() => replay(facts(), [subscribed(0, "s1", 2, false), event(1, 3), event(2, 5)]))
      .toThrow(/"seq gap-free per subscription" broke .* expected seq 4 of epoch undefined, got 5 of undefined/)
  })

  it("accept a jump after an explicit signal: recovered false, or the care-loss error frame", () => {
    expect(() => replay(facts(), [
      subscribed(0, "s1", 2, false), event(1, 3),
      at(2, { type: "error", code: "forbidden", channel: CHANNEL }),
      subscribed(3, "s2", 9, false), event(4, 10)
    ])).not.toThrow()
  })

  it("accept a jump, or a new epoch, after a reset (v1.1), and refuse a new epoch without one", () => {
    const from = (epoch: string, seq: number) => at(0, { type: "subscribed", id: "s1", channel: CHANNEL, epoch, seq, recovered: false })
    const inEpoch = (ms: number, epoch: string, seq: number) => at(ms, { type: "event", channel: CHANNEL, epoch, seq })
    const reset = (ms: number, epoch: string, seq: number) => at(ms, { type: "reset", channel: CHANNEL, epoch, seq })
    const live = replay(facts(), [
      from("Aaaaaaaa", 2), inEpoch(1, "Aaaaaaaa", 3), reset(2, "Aaaaaaaa", 150), inEpoch(3, "Aaaaaaaa", 151),
      reset(4, "Bbbbbbbb", 0), inEpoch(5, "Bbbbbbbb", 1)
    ])
    expect(live.get(CHANNEL)).toMatchObject({ epoch: "Bbbbbbbb", expected: 2 })
    expect(() => replay(facts(), [from("Aaaaaaaa", 2), inEpoch(1, "Aaaaaaaa", 3), inEpoch(2, "Bbbbbbbb", 4)]))
      .toThrow(/"seq gap-free per subscription" broke .* expected seq 4 of epoch Aaaaaaaa, got 4 of Bbbbbbbb/)
    expect(() => replay(facts(), [reset(1, "Aaaaaaaa", 3)])).toThrow(/"no reset outside a subscription"/)
  })

  it("refuse an event outside a subscription", () => {
    expect(() => replay(facts(), [event(1, 1)])).toThrow(/"no event outside a subscription"/)
  })

  it("refuse an event later than BOUND_MS after a revocation or a care end of the subscription", () => {
    expect(() => replay(facts({ revokedAt: [10] }), [subscribed(0, "s1", 0, false), event(11 + BOUND_MS, 1)]))
      .toThrow(/"no event after a revocation \+ BOUND_MS"/)
    expect(() => replay(facts({ careEndedAt: new Map([[CHANNEL, [10]]]) }), [subscribed(0, "s1", 0, false), event(11 + BOUND_MS, 1)]))
      .toThrow(/"no event after a care end \+ BOUND_MS"/)
    expect(() => replay(facts({ careEndedAt: new Map([[CHANNEL, [10]]]) }), [subscribed(0, "s1", 0, false), event(9 + BOUND_MS, 1)]))
      .not.toThrow()
  })

  it("refuse events past the bound on a subscription a racing subscribe got just after a care end, until care is granted again", () => {
    const ended = facts({ careEndedAt: new Map([[CHANNEL, [10]]]), careGrantedAt: new Map([[CHANNEL, [0, 100 + BOUND_MS]]]) })
    expect(() => replay(ended, [subscribed(11, "s1", 0, false), event(20 + BOUND_MS, 1)]))
      .toThrow(/"no event after a care end \+ BOUND_MS"/)
    expect(() => replay(ended, [subscribed(101 + BOUND_MS, "s1", 0, false), event(102 + BOUND_MS, 1)])).not.toThrow()
  })
})
