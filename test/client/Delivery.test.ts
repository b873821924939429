// Delivery is exactly once per seq of an epoch, in order, whatever the socket replays: the
// resume point is the last delivered seq; lost positions become onReset; positions survive a
// reload through `storage`; the client is open only after `welcome`.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest"
import type { ResetInfo, TidingsEvent } from "../../client/src/types.ts"
import { event, memoryStorage, start } from "./fake.ts"

beforeEach(() => void vi.useFakeTimers())
afterEach(() => void vi.useRealTimers())

const CH = "patient:pt_alice_0001"

const recorder = () => {
  const seqs: Array<number> = []
  const resets: Array<ResetInfo> = []
  const errors: Array<string> = []
  return {
    seqs, resets, errors,
    handlers: {
      onEvent: (e: TidingsEvent) => seqs.push(e.seq),
      onReset: (info: ResetInfo) => resets.push(info),
      onError: (code: string) => errors.push(code)
    }
  }
}

describe("opening", () => {
  it("is open only after welcome, and subscribes only then", async () => {
    const { client, socket } = await start()
    client.subscribe(CH, {})
    socket().open()
    expect(client.state).toBe("connecting")
    expect(socket().sent).toEqual([])
    socket().frame({ type: "hello_from_v2", extra: true }) // unknown frame types are ignored
    socket().welcome()
    expect(client.state).toBe("open")
    expect(socket().sent).toEqual([{ type: "subscribe", id: expect.any(String), channel: CH }])
  })

  it("passes on the event's fields, unknown fields left out", async () => {
    const { client, socket } = await start()
    const got: Array<TidingsEvent> = []
    client.subscribe(CH, { onEvent: (e) => got.push(e) })
    socket().accept()
    socket().frame({ type: "subscribed", id: socket().sent[0].id, channel: CH, seq: 0, recovered: false, epoch: "ep1" })
    socket().frame({ ...event(CH, 1), future: "field" })
    expect(got).toEqual([{
      channel: CH, seq: 1, epoch: "ep1", id: "evt_00000001", kind: "appointment.updated", ref: "apt_00000001",
      at: "2026-01-01T00:00:00.000Z"
    }])
  })
})

describe("resuming after a reconnect", () => {
  it("asks from the last delivered seq, not subscribed.seq, and delivers replay and live frames once, in order", async () => {
    const { client, socket } = await start()
    const r = recorder()
    client.subscribe(CH, r.handlers)
    socket().accept()
    socket().frame({ type: "subscribed", id: socket().sent[0].id, channel: CH, seq: 40, recovered: false, epoch: "ep1" })
    socket().frame(event(CH, 41))
    socket().frame(event(CH, 42))
    socket().frame(event(CH, 42)) // a duplicate on the same socket
    socket().serverClose(1001)
    await vi.advanceTimersByTimeAsync(30_000)
    socket().accept()
    const [subscribe] = socket().sentOf("subscribe")
    expect(subscribe).toEqual({ type: "subscribe", id: expect.any(String), channel: CH, since: 42, epoch: "ep1" })
    socket().frame({ type: "subscribed", id: subscribe.id, channel: CH, seq: 45, recovered: true, epoch: "ep1" })
    for (const seq of [41, 42, 43, 44, 45, 44, 46, 45, 47]) socket().frame(event(CH, seq))
    expect(r.seqs).toEqual([41, 42, 43, 44, 45, 46, 47])
    expect(r.resets).toEqual([])
  })

  it("turns recovered: false into onReset, then goes on from the new head", async () => {
    const { client, socket } = await start()
    const r = recorder()
    client.subscribe(CH, r.handlers)
    socket().accept()
    socket().frame({ type: "subscribed", id: socket().sent[0].id, channel: CH, seq: 5, recovered: false, epoch: "ep1" })
    socket().frame(event(CH, 6))
    socket().serverClose(1001)
    await vi.advanceTimersByTimeAsync(30_000)
    socket().accept()
    const [subscribe] = socket().sentOf("subscribe")
    socket().frame({ type: "subscribed", id: subscribe.id, channel: CH, seq: 0, recovered: false, epoch: "ep2" })
    socket().frame(event(CH, 1, "ep2"))
    expect(r.resets).toEqual([{ channel: CH, epoch: "ep2", seq: 0, reason: "not_recovered" }])
    expect(r.seqs).toEqual([6, 1])
    socket().serverClose(1001)
    await vi.advanceTimersByTimeAsync(30_000)
    socket().accept()
    expect(socket().sentOf("subscribe")[0]).toMatchObject({ since: 1, epoch: "ep2" })
  })

  it("a first subscription's recovered: false asks nothing of the app (it loads as it mounts)", async () => {
    const { client, socket } = await start()
    const r = recorder()
    client.subscribe(CH, r.handlers)
    socket().accept()
    socket().frame({ type: "subscribed", id: socket().sent[0].id, channel: CH, seq: 9, recovered: false, epoch: "ep1" })
    socket().frame(event(CH, 10))
    expect(r.resets).toEqual([])
    expect(r.seqs).toEqual([10])
  })
})

describe("reset and errors on a live subscription", () => {
  it("a reset frame calls onReset; live events follow from seq + 1 and older ones are dropped", async () => {
    const { client, socket } = await start()
    const r = recorder()
    client.subscribe(CH, r.handlers)
    socket().accept()
    socket().frame({ type: "subscribed", id: socket().sent[0].id, channel: CH, seq: 3, recovered: false, epoch: "ep1" })
    socket().frame(event(CH, 4))
    socket().frame({ type: "reset", channel: CH, epoch: "ep9", seq: 20 })
    socket().frame(event(CH, 5))
    socket().frame(event(CH, 21, "ep9"))
    expect(r.resets).toEqual([{ channel: CH, epoch: "ep9", seq: 20, reason: "reset" }])
    expect(r.seqs).toEqual([4, 21])
  })

  it("a seq missing on a live subscription is reported as a reset before the next event is delivered", async () => {
    const { client, socket } = await start()
    const r = recorder()
    client.subscribe(CH, r.handlers)
    socket().accept()
    socket().frame({ type: "subscribed", id: socket().sent[0].id, channel: CH, seq: 3, recovered: false, epoch: "ep1" })
    socket().frame(event(CH, 6))
    expect(r.resets).toEqual([{ channel: CH, epoch: "ep1", seq: 5, reason: "gap" }])
    expect(r.seqs).toEqual([6])
  })

  it("forbidden ends the subscription; rate_limited is reported and the subscribe retried", async () => {
    const { client, socket } = await start()
    const alice = recorder()
    const bob = recorder()
    client.subscribe(CH, alice.handlers)
    client.subscribe("patient:pt_bob_000002", bob.handlers)
    socket().accept()
    const [toAlice, toBob] = socket().sentOf("subscribe")
    socket().frame({ type: "error", id: toAlice.id, code: "rate_limited" })
    socket().frame({ type: "error", id: toBob.id, code: "forbidden" })
    expect([alice.errors, bob.errors]).toEqual([["rate_limited"], ["forbidden"]])
    await vi.advanceTimersByTimeAsync(5_000)
    expect(socket().sentOf("subscribe").map((f) => f.channel)).toEqual([CH, "patient:pt_bob_000002", CH])
    socket().serverClose(1001)
    await vi.advanceTimersByTimeAsync(30_000)
    socket().accept()
    expect(socket().sentOf("subscribe").map((f) => f.channel)).toEqual([CH])
  })

  it("unsubscribe sends unsubscribe when the last handler of a channel goes, and nothing more is delivered", async () => {
    const { client, socket } = await start()
    const r = recorder()
    const first = client.subscribe(CH, r.handlers)
    const second = client.subscribe(CH, r.handlers)
    socket().accept()
    socket().frame({ type: "subscribed", id: socket().sent[0].id, channel: CH, seq: 0, recovered: false, epoch: "ep1" })
    socket().frame(event(CH, 1))
    first.unsubscribe()
    expect(socket().sentOf("unsubscribe")).toEqual([])
    second.unsubscribe()
    expect(socket().sentOf("unsubscribe")).toEqual([{ type: "unsubscribe", id: expect.any(String), channel: CH }])
    socket().frame(event(CH, 2))
    expect(r.seqs).toEqual([1, 1])
  })
})

describe("positions in storage", () => {
  it("survive a reload: a new client on the same storage resumes from the last delivered seq and epoch", async () => {
    const storage = memoryStorage()
    const before = await start({ storage })
    before.client.subscribe(CH, {})
    before.socket().accept()
    before.socket().frame({ type: "subscribed", id: before.socket().sent[0].id, channel: CH, seq: 7, recovered: false, epoch: "ep1" })
    before.socket().frame(event(CH, 8))
    before.client.close()

    const after = await start({ storage })
    const r = recorder()
    after.client.subscribe(CH, r.handlers)
    after.socket().accept()
    const [subscribe] = after.socket().sentOf("subscribe")
    expect(subscribe).toEqual({ type: "subscribe", id: expect.any(String), channel: CH, since: 8, epoch: "ep1" })
    after.socket().frame({ type: "subscribed", id: subscribe.id, channel: CH, seq: 9, recovered: true, epoch: "ep1" })
    after.socket().frame(event(CH, 8))
    after.socket().frame(event(CH, 9))
    expect(r.seqs).toEqual([9])
  })

  it("an unreadable stored value is ignored rather than trusted", async () => {
    const storage = memoryStorage()
    storage.setItem("tidings:positions:wss://gateway.test/v1/ws", JSON.stringify({ [CH]: { seq: "9", epoch: 1 } }))
    const { client, socket } = await start({ storage })
    client.subscribe(CH, {})
    socket().accept()
    expect(socket().sentOf("subscribe")[0]).not.toHaveProperty("since")
  })
})
