// `since` replays nothing from before the start of a clinician's current access (finding 6 of
// the enforcement review): events published while a care relationship had ended stay out of
// reach after it is granted again. Two real nodes on one real redis-server, over wss://.
import { beforeAll, describe, expect, it } from "vitest"
import { useTwoNodes } from "../support/nodes.ts"
import { hasRedisServer, skipReason } from "../support/redis.ts"

describe.skipIf(!hasRedisServer)(`since-replay and care access${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  const nodes = useTwoNodes()
  let service: string
  beforeAll(async () => {
    service = await nodes.a.token("service", "svc_replay_0001")
  })

  const care = async (method: "PUT" | "DELETE", clinician: string, patient: string) => {
    const body = JSON.stringify({ clinician, patient })
    const reply = await nodes.a.http(method, "/v1/care-relationships", {
      body,
      headers: { authorization: `Bearer ${service}`, "content-type": "application/json", "content-length": String(body.length) }
    })
    expect(reply.status).toBe(204)
  }

  const publish = async (channel: string, ref: string) => {
    const reply = await nodes.a.publish("svc_replay_0001", { channel, kind: "result.available", ref })
    expect(reply.status).toBe(202)
    return reply.json().seq as number
  }

  const subscribe = async (clinician: string, channel: string, since: number) => {
    const connected = await nodes.b.connect({ ticket: await nodes.b.ticket("clinician", clinician) })
    if (connected.kind !== "open") throw new Error(JSON.stringify(connected))
    connected.client.send({ type: "subscribe", id: "s", channel, since })
    const subscribed = await connected.client.next((f) => f.type === "subscribed" || f.type === "error")
    // A ping answered after the subscribe: every frame the subscribe sent is in by then.
    connected.client.send({ type: "ping", id: "after" })
    await connected.client.next((f) => f.type === "pong")
    return { ...connected, subscribed }
  }

  it("replays nothing published while the relationship had ended, and says so with recovered: false", async () => {
    const [clinician, patient] = ["cl_replay_00001", "pt_replay_00001"]
    const channel = `patient:${patient}`
    await care("PUT", clinician, patient)
    await publish(channel, "res_granted_01")
    await care("DELETE", clinician, patient)
    for (let i = 1; i <= 3; i++) await publish(channel, `res_gap_00000${i}`)
    await care("PUT", clinician, patient)

    const { ws, client, subscribed } = await subscribe(clinician, channel, 0)
    expect(subscribed).toMatchObject({ type: "subscribed", seq: 4, recovered: false })
    expect(client.frames.filter((f) => f.type === "event")).toEqual([])
    ws.close()
  })

  it("replays what was published since the current grant began", async () => {
    const [clinician, patient] = ["cl_replay_00002", "pt_replay_00002"]
    const channel = `patient:${patient}`
    await care("PUT", clinician, patient)
    await care("DELETE", clinician, patient)
    const gap = await publish(channel, "res_gap_000001")
    await care("PUT", clinician, patient)
    // A renewal of the running grant keeps its start.
    await care("PUT", clinician, patient)
    await publish(channel, "res_after_0001")
    await publish(channel, "res_after_0002")

    const { ws, client, subscribed } = await subscribe(clinician, channel, gap)
    expect(subscribed).toMatchObject({ type: "subscribed", seq: gap + 2, recovered: true })
    expect(client.frames.filter((f) => f.type === "event").map((f) => f.ref)).toEqual(["res_after_0001", "res_after_0002"])
    ws.close()
  })

  it("still replays a patient's own channel from its first event", async () => {
    const patient = "pt_replay_00003"
    const channel = `patient:${patient}`
    await publish(channel, "res_own_000001")
    await publish(channel, "res_own_000002")
    const connected = await nodes.b.connect({ ticket: await nodes.b.ticket("patient", patient) })
    if (connected.kind !== "open") throw new Error(JSON.stringify(connected))
    connected.client.send({ type: "subscribe", id: "s", channel, since: 0 })
    expect(await connected.client.next((f) => f.type === "subscribed")).toMatchObject({ seq: 2, recovered: true })
    await connected.client.next((f) => f.type === "event" && f.seq === 2)
    expect(connected.client.frames.filter((f) => f.type === "event").map((f) => f.seq)).toEqual([1, 2])
    connected.ws.close()
  })
})
