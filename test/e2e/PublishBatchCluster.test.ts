// POST /v1/events/batch on two nodes sharing one real redis-server: a batch through node B
// reaches subscribers on node A, each channel's events in request order, and a repeated batch
// is answered from the channels' idempotency records in Redis.
import { describe, expect, it } from "vitest"
import type { Gateway } from "../support/gateway.ts"
import { useTwoNodes } from "../support/nodes.ts"

describe("a batch on two nodes over Redis", () => {
  const nodes = useTwoNodes()

  const subscriber = async (gateway: Gateway, patient: string) => {
    const connected = await gateway.connect({ ticket: await gateway.ticket("patient", patient) })
    if (connected.kind !== "open") throw new Error(JSON.stringify(connected))
    connected.client.send({ type: "subscribe", id: "s", channel: `patient:${patient}` })
    await connected.client.next((f) => f.type === "subscribed")
    return connected
  }

  it("delivers a batch published through node B to subscribers on node A, each channel in request order", async () => {
    const patients = ["pt_batch_node_01", "pt_batch_node_02", "pt_batch_node_03"]
    const sessions = await Promise.all(patients.map((patient) => subscriber(nodes.a, patient)))
    // Ten events per channel, interleaved across the channels as a service would send them.
    const events = Array.from({ length: 30 }, (_, i) => ({
      channel: `patient:${patients[i % 3]}`,
      kind: "message.received",
      ref: `msg_node_${String(i).padStart(4, "0")}`,
      id: `evt_node_${String(i).padStart(4, "0")}`
    }))
    const reply = await nodes.b.publishBatch("svc_batch_node1", events)
    expect(reply.status).toBe(200)
    const results: ReadonlyArray<{ channel: string; seq: number }> = reply.json().results
    expect(results.map((r) => [r.channel, r.seq])).toEqual(events.map((e, i) => [e.channel, Math.floor(i / 3) + 1]))

    for (const [p, { client }] of sessions.entries()) {
      const expected = events.filter((_, i) => i % 3 === p).map((e, n) => [n + 1, e.ref])
      // Each frame of the channel, in order, on the other node.
      await client.next((f) => f.type === "event" && f.seq === 10, 10_000)
      expect(client.frames.filter((f) => f.type === "event").map((f) => [f.seq, f.ref])).toEqual(expected)
    }

    // The same batch again, through node A this time: the same answers, nothing delivered twice.
    const again = await nodes.a.publishBatch("svc_batch_node1", events)
    expect(again.json()).toEqual(reply.json())
    // A marker event after it on each channel: once it is in, anything the repeat sent is too.
    for (const [p, { client }] of sessions.entries()) {
      const marker = await nodes.b.publish("svc_batch_node1", { channel: `patient:${patients[p]}`, kind: "message.received", ref: "msg_marker_01" })
      expect(marker.json().seq).toBe(11)
      await client.next((f) => f.type === "event" && f.seq === 11, 10_000)
      expect(client.frames.filter((f) => f.type === "event").map((f) => f.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    }
    for (const { ws } of sessions) ws.close()
  })
})
