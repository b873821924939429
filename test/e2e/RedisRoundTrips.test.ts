// The Redis cost of one new session, end to end on a real redis-server: the ticket, the wss
// upgrade to `welcome`, the first subscribe to the patient's own channel, and the close. Every
// command and every write (one write is one round trip's request) the node sends is counted,
// so a change that adds a command or a round trip to a session fails here.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { PUBLISH, PUBLISH_MANY } from "../../src/interpreters/redis/EventBus.ts"
import { RENEW } from "../../src/interpreters/redis/Sessions.ts"
import { Keys } from "../../src/interpreters/redis/Keys.ts"
import { type Client, type Gateway, startGateway } from "../support/gateway.ts"
import { hasRedisServer, skipReason, startRedis, type TestRedis } from "../support/redis.ts"
import { recordRedisTraffic, type Sent } from "../support/redis-traffic.ts"
import { until } from "../support/wait.ts"

/**
 * The node's own periodic work, which may fall inside a measured step: the control channel's
 * heartbeat and the lease renewal cycle. Neither is paid per session opened.
 */
const background = (command: ReadonlyArray<string>) =>
  (command[0] === "PUBLISH" && command[1] === Keys.control) || (command[0] === "EVALSHA" && command[1] === RENEW.sha)

/** Commands (by name) and round trips (writes that carry any) of one step, background left out. */
const cost = (sent: ReadonlyArray<Sent>) => {
  const writes = sent.map((write) => write.commands.filter((command) => !background(command))).filter((c) => c.length > 0)
  return { commands: writes.flat().map((command) => command[0]), roundTrips: writes.length }
}

/** At most this many; the message names what was sent, for whoever meets a regression. */
const within = (step: string, measured: ReturnType<typeof cost>, bound: { commands: number; roundTrips: number }) => {
  const what = `${step}: ${measured.commands.join(" ")} in ${measured.roundTrips} round trips`
  expect(measured.commands.length, what).toBeLessThanOrEqual(bound.commands)
  expect(measured.roundTrips, what).toBeLessThanOrEqual(bound.roundTrips)
}

describe.skipIf(!hasRedisServer)(`Redis commands per session${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  let redis: TestRedis
  let gateway: Gateway
  let traffic: ReturnType<typeof recordRedisTraffic>

  beforeAll(async () => {
    redis = await startRedis()
    gateway = await startGateway({ TIDINGS_REDIS_URL: redis.url })
    traffic = recordRedisTraffic(redis.port)
  }, 30_000)
  afterAll(async () => {
    traffic?.stop()
    await gateway?.close()
    await redis?.stop()
  })

  const open = async (ticket: string): Promise<{ close: () => void; client: Client }> => {
    const connected = await gateway.connect({ ticket })
    if (connected.kind !== "open") throw new Error(JSON.stringify(connected))
    await connected.client.next((f) => f.type === "welcome")
    return { close: () => connected.ws.close(), client: connected.client }
  }

  const subscribe = (client: Client, channel: string) => {
    client.send({ type: "subscribe", id: "s", channel })
    return client.next((f) => f.type === "subscribed")
  }

  it("opens a patient's session and subscribes its channel in a bounded number of commands and round trips", async () => {
    // Warm: Redis has every script cached (no NOSCRIPT retry) and the node every connection,
    // as in steady state. This session stays open, so its close cannot fall into a step below.
    const warm = await open(await gateway.ticket("patient", "pt_warm_0000001"))
    await subscribe(warm.client, "patient:pt_warm_0000001")

    const token = await gateway.token("patient", "pt_trips_000001")
    traffic.take()
    const reply = await gateway.http("POST", "/v1/tickets", {
      body: "{}",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` }
    })
    expect(reply.status).toBe(201)
    const issue = cost(traffic.take())

    const session = await open(reply.json().ticket)
    const opened = cost(traffic.take())

    await subscribe(session.client, "patient:pt_trips_000001")
    const subscribed = cost(traffic.take())

    const closedBefore = (await gateway.audit()).filter((r) => r.event === "ws.closed").length
    session.close()
    await until(async () => (await gateway.audit()).filter((r) => r.event === "ws.closed").length > closedBefore, 5_000, "ws.closed")
    const closed = cost(traffic.take())

    within("issue", issue, { commands: 4, roundTrips: 2 })
    within("open", opened, { commands: 2, roundTrips: 2 })
    within("subscribe", subscribed, { commands: 3, roundTrips: 3 })
    within("close", closed, { commands: 2, roundTrips: 2 })
    warm.close()
  })

  it("subscribes a clinician to a patient's channel this node follows: the token and the care relationship in one round trip", async () => {
    const [patient, clinician] = ["pt_trips_000002", "cl_trips_000002"]
    const followed = await open(await gateway.ticket("patient", patient))
    await subscribe(followed.client, `patient:${patient}`)
    const body = JSON.stringify({ clinician, patient })
    const granted = await gateway.http("PUT", "/v1/care-relationships", {
      body,
      headers: {
        authorization: `Bearer ${await gateway.token("service", "svc_trips_00001")}`,
        "content-type": "application/json",
        "content-length": String(body.length)
      }
    })
    expect(granted.status).toBe(204)
    const session = await open(await gateway.ticket("clinician", clinician))

    traffic.take()
    expect(await subscribe(session.client, `patient:${patient}`)).toMatchObject({ type: "subscribed" })
    within("care subscribe", cost(traffic.take()), { commands: 2, roundTrips: 1 })
    session.close()
    followed.close()
  })

  it("publishes a batch over several channels in one script call (a single Redis: one slot for every key)", async () => {
    // Warm: the scripts are cached and the service's publish rate lease is held.
    await gateway.publishBatch("svc_trips_batch1", [{ channel: "patient:pt_trips_batch_00", kind: "message.received", ref: "msg_warm_000001" }])
    const events = Array.from({ length: 20 }, (_, i) => ({
      channel: `patient:pt_trips_batch_0${i % 5}`,
      kind: "message.received",
      ref: `msg_trips_${String(i).padStart(6, "0")}`
    }))
    traffic.take()
    const reply = await gateway.publishBatch("svc_trips_batch1", events)
    expect(reply.status).toBe(200)
    expect(reply.json().results.map((r: { seq: number }) => r.seq)).toEqual(events.map((_, i) => Math.floor(i / 5) + 1 + (i % 5 === 0 ? 1 : 0)))
    const scripts = traffic.take().flatMap((write) => write.commands)
      .filter((command) => command[0] === "EVALSHA" || command[0] === "EVAL")
      .map((command) => command[1] === PUBLISH_MANY.sha ? "PUBLISH_MANY" : command[1] === PUBLISH.sha ? "PUBLISH" : "other")
      .filter((script) => script !== "other")
    expect(scripts).toEqual(["PUBLISH_MANY"])
  })
})
