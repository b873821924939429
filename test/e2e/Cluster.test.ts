// Two gateway nodes on one real redis-server act as one gateway: events, tickets, revocation,
// the session cap and seq order all hold across nodes.
import { describe, expect, it } from "vitest"
import type { Gateway } from "../support/gateway.ts"
import { roundTrip, useTwoNodes } from "../support/nodes.ts"
import { hasRedisServer, skipReason } from "../support/redis.ts"

describe.skipIf(!hasRedisServer)(`two nodes on one Redis${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  const nodes = useTwoNodes({ TIDINGS_MAX_SESSIONS_PER_SUBJECT: "3" })

  const open = async (gateway: Gateway, ticket: string) => {
    const connected = await gateway.connect({ ticket })
    if (connected.kind !== "open") throw new Error(JSON.stringify(connected))
    return connected
  }

  it("delivers an event published through node B to a subscriber on node A", async () => {
    const { ws, client } = await open(nodes.a, await nodes.a.ticket("patient", "pt_cluster_00001"))
    client.send({ type: "subscribe", id: "s", channel: "patient:pt_cluster_00001" })
    await client.next((f) => f.type === "subscribed")
    const reply = await nodes.b.publish("svc_cluster_001", { channel: "patient:pt_cluster_00001", kind: "task.assigned", ref: "tsk_00000001" })
    expect(reply.status).toBe(202)
    expect(await client.next((f) => f.type === "event")).toMatchObject({ seq: 1, ref: "tsk_00000001" })
    ws.close()
  })

  it("lets a ticket issued on A be used once, on B; a second use on A gets 4401", async () => {
    const ticket = await nodes.a.ticket("patient", "pt_cluster_00002")
    const first = await open(nodes.b, ticket)
    await roundTrip(first.client, "p")
    expect(await (await open(nodes.a, ticket)).client.closed).toEqual({ code: 4401, reason: "unauthorized" })
    first.ws.close()
  })

  it("closes the subject's session on B with 4409 within 1 s of a revocation through A", async () => {
    const session = await open(nodes.b, await nodes.b.ticket("patient", "pt_cluster_00003"))
    await roundTrip(session.client, "p")
    const admin = await nodes.a.token("admin", "ad_cluster_0001")
    const started = Date.now()
    const reply = await nodes.a.http("POST", "/v1/admin/revocations", {
      body: JSON.stringify({ subject: "pt_cluster_00003" }),
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" }
    })
    expect(reply.status).toBe(202)
    expect(await session.client.closed).toEqual({ code: 4409, reason: "session revoked" })
    expect(Date.now() - started).toBeLessThan(1_000)
  })

  it("holds the per-subject session cap across nodes", async () => {
    const subject = "pt_cluster_00004"
    const held = [
      await open(nodes.a, await nodes.a.ticket("patient", subject)),
      await open(nodes.b, await nodes.b.ticket("patient", subject)),
      await open(nodes.a, await nodes.a.ticket("patient", subject))
    ]
    for (const [i, s] of held.entries()) await roundTrip(s.client, `p${i}`)
    const fourth = await open(nodes.b, await nodes.b.ticket("patient", subject))
    expect(await fourth.client.closed).toEqual({ code: 4430, reason: "too many sessions" })
    held[0]!.ws.close()
    await held[0]!.client.closed
    // The freed place can be taken again, from either node.
    let again: Awaited<ReturnType<typeof open>> | undefined
    for (let attempt = 0; attempt < 20 && again === undefined; attempt++) {
      const candidate = await open(nodes.b, await nodes.b.ticket("patient", subject))
      candidate.client.send({ type: "ping", id: "x" })
      const outcome = await Promise.race([
        candidate.client.next((f) => f.type === "pong").then(() => "open" as const),
        candidate.client.closed.then(() => "closed" as const)
      ])
      if (outcome === "open") again = candidate
      else await new Promise((resolve) => setTimeout(resolve, 25))
    }
    expect(again).toBeDefined()
    for (const s of [...held.slice(1), again!]) s.ws.close()
  })

  it("keeps seq gap-free and strictly increasing with both nodes publishing at once", async () => {
    const channel = "patient:pt_cluster_00005"
    const { ws, client } = await open(nodes.a, await nodes.a.ticket("patient", "pt_cluster_00005"))
    client.send({ type: "subscribe", id: "s", channel })
    await client.next((f) => f.type === "subscribed")
    const publish = (node: Gateway, n: number) =>
      node.publish(`svc_cluster_${node === nodes.a ? "a" : "b"}00`, { channel, kind: "message.received", ref: `msg_${String(n).padStart(8, "0")}` })
    const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => publish(i % 2 === 0 ? nodes.a : nodes.b, i)))
    expect(replies.every((r) => r.status === 202)).toBe(true)
    expect(replies.map((r) => r.json().seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1))
    await client.next((f) => f.type === "event" && f.seq === 200)
    const seqs = client.frames.filter((f) => f.type === "event").map((f) => f.seq)
    expect(seqs).toEqual(Array.from({ length: 200 }, (_, i) => i + 1))
    ws.close()
  })
})
