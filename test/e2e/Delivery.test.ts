// Delivery never waits on a socket: one subscriber that stops reading is closed 4508 when
// its window fills, while 500 that read get every event, in order, and publishing goes on.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Client, type Gateway, startGateway } from "../support/gateway.ts"

const READERS = 500
const EVENTS = 1_000
const PATIENT = "pt_fanout_00001"

let gateway: Gateway
beforeAll(async () => {
  gateway = await startGateway({
    // One subject holds all 501 sessions here, so its caps are raised for this test; the
    // window is set below the event count so the stalled reader must overflow it.
    TIDINGS_MAX_SESSIONS_PER_SUBJECT: "1000",
    TIDINGS_RATE_TICKETS_PER_MIN: "100000",
    TIDINGS_RATE_SUBSCRIBES_PER_MIN: "100000",
    TIDINGS_RATE_CONNECTS_PER_MIN: "100000",
    TIDINGS_OUTBOX_FRAMES: "256",
    // The heartbeat would also cut the stalled reader (no pong within 10 s of a ping, and a
    // socket's first ping may come at any point of the interval): kept out of the way here,
    // so what ends it is the full window, under any load. Heartbeat.test.ts covers the other.
    TIDINGS_HEARTBEAT_S: "3600"
  })
})
afterAll(() => gateway.close())

const subscribe = async (): Promise<{ ws: import("ws").WebSocket; client: Client }> => {
  const connected = await gateway.connect({ ticket: await gateway.ticket("patient", PATIENT) })
  if (connected.kind !== "open") throw new Error(JSON.stringify(connected))
  connected.client.send({ type: "subscribe", id: "s", channel: `patient:${PATIENT}` })
  await connected.client.next((f) => f.type === "subscribed")
  return connected
}

describe("delivery", () => {
  it("closes a subscriber that never reads with 4508 while 500 readers get all 1,000 events", async () => {
    const stuck = await subscribe()
    // Stop reading at the TCP level: nothing is consumed, no ping is answered.
    ;(stuck.ws as unknown as { _socket: { pause(): void } })._socket.pause()

    const readers: Array<Client> = []
    for (let i = 0; i < READERS; i += 50) {
      readers.push(...(await Promise.all(Array.from({ length: Math.min(50, READERS - i) }, subscribe))).map((r) => r.client))
    }

    const latencies: Array<number> = []
    for (let i = 0; i < EVENTS; i++) {
      const started = performance.now()
      const reply = await gateway.publish("svc_fanout", {
        channel: `patient:${PATIENT}`, kind: "message.received", ref: `msg_${String(i).padStart(8, "0")}`
      })
      latencies.push(performance.now() - started)
      expect(reply.status).toBe(202)
    }
    const lastPublishAt = Date.now()

    await Promise.all(readers.map((reader) => reader.next((f) => f.type === "event" && f.seq === EVENTS, 30_000)))
    for (const reader of readers) {
      const seqs = reader.frames.filter((f) => f.type === "event").map((f) => f.seq)
      expect(seqs).toHaveLength(EVENTS)
      expect(seqs.every((seq, i) => seq === i + 1)).toBe(true)
    }
    // The server cut the stalled socket while publishing went on, not after it had drained.
    const cut = (await gateway.audit()).find((r) => r.event === "ws.closed" && r.close === 4508)
    expect(cut).toBeDefined()
    expect(Date.parse(cut!.ts)).toBeLessThan(lastPublishAt)
    expect((await gateway.audit()).filter((r) => r.event === "delivery.failed" && r.cause === "TooSlow")).toHaveLength(1)
    // Once it reads again, the client finds the close frame behind what it had buffered.
    ;(stuck.ws as unknown as { _socket: { resume(): void } })._socket.resume()
    expect(await stuck.client.closed).toEqual({ code: 4508, reason: "too slow" })
    expect(stuck.client.frames.filter((f) => f.type === "event").length).toBeLessThan(EVENTS)

    latencies.sort((a, b) => a - b)
    console.log(`publish latency p50 ${latencies[EVENTS / 2]!.toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms`)
  }, 120_000)
})
