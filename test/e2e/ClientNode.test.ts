// @tidings/client in Node against real gateway nodes: it connects, subscribes and receives;
// resumes across a node restart (SIGTERM, 1001) on Redis with no gap and no duplicate; turns a
// Redis flush into onReset; stops on revocation (4409), on idle logoff (4410, until
// markActive) and on an Origin the gateway refuses.
import { afterEach, describe, expect, it } from "vitest"
import type { Client } from "../../client/src/types.ts"
import { devTickets, nodeClient, record } from "../support/client.ts"
import { type Gateway, ORIGIN, startGateway } from "../support/gateway.ts"
import { DEV_ORIGIN, https, restartablePair, useProcesses } from "../support/process.ts"
import { hasRedisServer, skipReason, startRedis, useRedis } from "../support/redis.ts"

useProcesses()

const PATIENT = "pt_client_000001"
const CHANNEL = `patient:${PATIENT}`
const clients: Array<Client> = []
const gateways: Array<Gateway> = []
afterEach(async () => {
  for (const client of clients.splice(0)) client.close()
  for (const gateway of gateways.splice(0)) await gateway.close()
})

const gatewayClient = async (env: Record<string, string> = {}, origin = ORIGIN) => {
  const gateway = await startGateway(env)
  gateways.push(gateway)
  const port = Number(new URL(gateway.base).port)
  const client = nodeClient({
    url: gateway.wsUrl, ca: () => gateway.ca, origin, getTicket: devTickets(() => port, () => gateway.ca, "patient", PATIENT)
  })
  clients.push(client)
  return { gateway, client, seen: record(client, CHANNEL) }
}

const publish = (gateway: Gateway, n: number) =>
  gateway.publish("svc_client_tests", { channel: CHANNEL, kind: "appointment.updated", ref: `apt_${String(n).padStart(8, "0")}` })

describe("@tidings/client in Node against a gateway node", () => {
  it("connects, is open after welcome, subscribes and receives every event once, in order", async () => {
    const { gateway, client, seen } = await gatewayClient()
    await seen.until("open", () => client.state === "open")
    // Events published before the subscription is in place are not this subscription's.
    await seen.until("subscribed", () => client.subscribed(CHANNEL))
    for (let n = 1; n <= 3; n++) expect((await publish(gateway, n)).status).toBe(202)
    await seen.until("three events", () => seen.events.length >= 3)
    expect(seen.seqs()).toEqual([1, 2, 3])
    expect(seen.events[0]).toMatchObject({ channel: CHANNEL, kind: "appointment.updated", ref: "apt_00000001" })
    expect(seen.resets).toEqual([])
  })

  it("stops with 4409 when the subject is revoked, and does not reconnect", async () => {
    const { gateway, client, seen } = await gatewayClient()
    await seen.until("open", () => client.state === "open")
    const admin = await gateway.token("admin", "adm_client_0001")
    const revoked = await gateway.http("POST", "/v1/admin/revocations", {
      body: JSON.stringify({ subject: PATIENT, role: "patient" }),
      headers: { "content-type": "application/json", authorization: `Bearer ${admin}` }
    })
    expect(revoked.status).toBe(202)
    await seen.until("stopped", () => client.state === "stopped")
    expect(seen.states.at(-1)).toEqual({ state: "stopped", detail: { code: 4409, action: "stop" } })
  })

  it("reports an Origin the gateway refuses (stopped, cause handshake) after three upgrades instead of retrying forever", async () => {
    const { client, seen } = await gatewayClient({}, "https://not-allowed.example.test")
    await seen.until("stopped", () => client.state === "stopped", 20_000)
    expect(seen.states.at(-1)).toEqual({ state: "stopped", detail: { code: 1006, action: "stop", cause: "handshake" } })
    expect(seen.states.filter((s) => s.state === "open")).toEqual([])
  })

  it("is logged off when idle (4410), stays stopped, and connects again on markActive()", { timeout: 90_000 }, async () => {
    const { client, seen } = await gatewayClient({ TIDINGS_IDLE_TIMEOUT_S: "30" })
    await seen.until("open", () => client.state === "open")
    await seen.until("idle logoff", () => client.state === "stopped", 45_000)
    expect(seen.states.at(-1)).toEqual({ state: "stopped", detail: { code: 4410, action: "stop" } })
    const opens = seen.states.filter((s) => s.state === "open").length
    client.markActive()
    await seen.until("open again", () => client.state === "open")
    expect(seen.states.filter((s) => s.state === "open").length).toBe(opens + 1)
  })
})

describe.skipIf(!hasRedisServer)(`@tidings/client against gateway nodes on Redis${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  const handle = useRedis()

  it("turns a Redis flush (history and seq lost) into onReset, then delivers the new epoch's events", async () => {
    const { gateway, client, seen } = await gatewayClient({ TIDINGS_REDIS_URL: handle.redis.url })
    await seen.until("subscribed", () => client.subscribed(CHANNEL))
    expect((await publish(gateway, 1)).status).toBe(202)
    expect((await publish(gateway, 2)).status).toBe(202)
    await seen.until("two events", () => seen.events.length === 2)
    const before = seen.events[1]!.epoch
    await handle.admin.flushall()
    expect((await publish(gateway, 3)).status).toBe(202)
    await seen.until("a reset and the next event", () => seen.resets.length === 1 && seen.events.length === 3)
    expect(seen.resets[0]!.epoch).not.toBe(before)
    expect(seen.events[2]!.epoch).toBe(seen.resets[0]!.epoch)
    expect(seen.events[2]!.seq).toBe(seen.resets[0]!.seq + 1)
  })

  it("resumes across a node restart (SIGTERM, 1001) with every event published meanwhile, none twice", { timeout: 60_000 }, async () => {
    const redis = await startRedis({ persistent: true })
    try {
      // A second node on the same Redis publishes while the first is down.
      const pair = await restartablePair(redis.url, "svc_client_tests")
      const { port, ca } = pair
      const publishVia = (n: number) => pair.publishVia(CHANNEL, n)

      const client = nodeClient({ url: `wss://localhost:${port}/v1/ws`, ca, origin: DEV_ORIGIN, getTicket: devTickets(() => port, ca, "patient", PATIENT) })
      clients.push(client)
      const seen = record(client, CHANNEL)
      await seen.until("subscribed", () => client.subscribed(CHANNEL))
      for (let n = 1; n <= 3; n++) expect(await publishVia(n)).toBe(202)
      await seen.until("three events", () => seen.events.length === 3)

      await pair.stop()
      await seen.until("reconnecting after 1001", () => seen.states.some((s) => s.detail?.code === 1001))
      for (let n = 4; n <= 6; n++) expect(await publishVia(n)).toBe(202)
      await pair.start()
      await seen.until("six events", () => seen.events.length >= 6)
      expect(await publishVia(7)).toBe(202)
      await seen.until("seven events", () => seen.events.length >= 7)
      expect(seen.seqs()).toEqual([1, 2, 3, 4, 5, 6, 7])
      expect(seen.resets).toEqual([])
      await pair.close()
    } finally {
      await redis.stop()
    }
  })
})
