// A node whose Redis goes away fails closed and comes back on its own: /readyz 503 within
// 2 s, new tickets 503 and new sockets 4503 while it is down, no crash; once Redis is back,
// readiness returns and live subscriptions get events again without any client reconnecting.
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Gateway, startGateway } from "../support/gateway.ts"
import { until } from "../support/wait.ts"
import { canControlRedis, controlSkipReason, hasRedisServer, skipReason, startRedis, type TestRedis, USERS } from "../support/redis.ts"


describe.skipIf(!canControlRedis)(`a Redis outage${
  canControlRedis ? "" : ` (skipped: ${hasRedisServer ? controlSkipReason : skipReason})`
}`, () => {
  let redis: TestRedis
  let gateway: Gateway

  beforeAll(async () => {
    redis = await startRedis({ persistent: true })
    gateway = await startGateway({ TIDINGS_REDIS_URL: redis.url })
  })
  afterAll(async () => {
    await gateway?.close()
    await redis?.stop()
  })

  it("fails closed while Redis is down and recovers without clients reconnecting", async () => {
    const channel = "patient:pt_outage_00001"
    const patientToken = await gateway.token("patient", "pt_outage_00001")
    const connected = await gateway.connect({ ticket: await gateway.ticket("patient", "pt_outage_00001") })
    if (connected.kind !== "open") throw new Error(JSON.stringify(connected))
    const { client } = connected
    client.send({ type: "subscribe", id: "s", channel })
    await client.next((f) => f.type === "subscribed")
    expect((await gateway.publish("svc_outage_001", { channel, kind: "result.available", ref: "res_before_01" })).status).toBe(202)
    await client.next((f) => f.type === "event" && f.seq === 1)
    const spareTicket = await gateway.ticket("patient", "pt_outage_00002")

    await redis.kill()
    const notReadyAfter = await until(async () => (await gateway.http("GET", "/readyz")).status === 503, 2_000, "readyz 503")
    expect(notReadyAfter).toBeLessThan(2_000)
    expect((await gateway.http("GET", "/healthz")).status).toBe(200)

    const ticket = await gateway.http("POST", "/v1/tickets", { headers: { authorization: `Bearer ${patientToken}` } })
    expect(ticket.status).toBe(503)
    expect(ticket.json()).toEqual({ error: "unavailable" })
    const publish = await gateway.publish("svc_outage_001", { channel, kind: "result.available", ref: "res_during_01" })
    expect(publish.status).toBe(503)
    const refused = await gateway.connect({ ticket: spareTicket })
    if (refused.kind !== "open") throw new Error(JSON.stringify(refused))
    expect(await refused.client.closed).toEqual({ code: 4503, reason: "try again later" })

    await redis.restart()
    await until(async () => (await gateway.http("GET", "/readyz")).status === 200, 5_000, "readyz 200")
    // Redis persisted seq (append-only file), so the next event is seq 2; the refused publish
    // during the outage took no seq. The same socket, never reconnected, receives it.
    const after = await gateway.publish("svc_outage_001", { channel, kind: "result.available", ref: "res_after_01" })
    expect(after.status).toBe(202)
    expect(after.json().seq).toBe(2)
    expect(await client.next((f) => f.type === "event" && f.seq === 2)).toMatchObject({ ref: "res_after_01" })
    expect(client.frames.filter((f) => f.type === "event").map((f) => f.seq)).toEqual([1, 2])
    connected.ws.close()
  }, 30_000)

  /** A patient's session subscribed to its channel, and an admin connection to the same Redis. */
  const subscribedWithAdmin = async (ref: string, channel: string) => {
    const connected = await gateway.connect({ ticket: await gateway.ticket("patient", ref) })
    if (connected.kind !== "open") throw new Error(JSON.stringify(connected))
    const { client } = connected
    client.send({ type: "subscribe", id: "s", channel })
    await client.next((f) => f.type === "subscribed")
    const admin = new Redis(redis.adminUrl, { lazyConnect: true })
    await admin.connect()
    return { connected, client, admin }
  }

  it("fills the gap from history when its subscriber connection drops and comes back", async () => {
    const channel = "patient:pt_outage_00003"
    const { connected, client, admin } = await subscribedWithAdmin("pt_outage_00003", channel)
    try {
      // Cut only the pub/sub connections; the node's command connection stays up, so these
      // publishes succeed while nothing is subscribed to hear them.
      await admin.call("CLIENT", "KILL", "TYPE", "pubsub")
      for (let i = 1; i <= 5; i++) {
        const reply = await gateway.publish("svc_outage_002", { channel, kind: "message.received", ref: `msg_gap_0000${i}` })
        expect(reply.status).toBe(202)
      }
      await client.next((f) => f.type === "event" && f.seq === 5, 5_000)
      expect(client.frames.filter((f) => f.type === "event").map((f) => f.seq)).toEqual([1, 2, 3, 4, 5])
    } finally {
      admin.disconnect()
      connected.ws.close()
    }
  }, 30_000)

  it("keeps retrying a channel Redis refuses to re-subscribe, and fills the gap once it may", async () => {
    const channel = "patient:pt_outage_00004"
    const { connected, client, admin } = await subscribedWithAdmin("pt_outage_00004", channel)
    try {
      // SSUBSCRIBE taken from the node's user (an ACL change), then its subscriber connections
      // cut: the re-SSUBSCRIBE is refused. ioredis left that refusal unhandled, which ended the process.
      await admin.call("ACL", "SETUSER", USERS.gateway.name, "-ssubscribe")
      await admin.call("CLIENT", "KILL", "TYPE", "pubsub")
      for (let i = 1; i <= 3; i++) {
        expect((await gateway.publish("svc_outage_003", { channel, kind: "message.received", ref: `msg_acl_0000${i}` })).status).toBe(202)
      }
      // Only once Redis has refused a re-SSUBSCRIBE (its ACL log says so) is it allowed again.
      await until(async () => JSON.stringify(await admin.call("ACL", "LOG")).includes("ssubscribe"), 5_000, "a refused re-SSUBSCRIBE")
      await admin.call("ACL", "SETUSER", USERS.gateway.name, "+ssubscribe")
      await client.next((f) => f.type === "event" && f.seq === 3, 10_000)
      expect(client.frames.filter((f) => f.type === "event").map((f) => f.seq)).toEqual([1, 2, 3])
      // Live again, not only backfilled.
      expect((await gateway.publish("svc_outage_003", { channel, kind: "message.received", ref: "msg_acl_00004" })).status).toBe(202)
      await client.next((f) => f.type === "event" && f.seq === 4, 5_000)
    } finally {
      await admin.call("ACL", "SETUSER", USERS.gateway.name, "+ssubscribe")
      admin.disconnect()
      connected.ws.close()
    }
  }, 30_000)
})
