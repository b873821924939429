// A node started against a Redis that still holds what a version before the data key wrote (keys
// named by raw refs, plain JSON values) keeps working: it never reads them, a resume from a
// position of that time answers `recovered: false`, and new events flow (docs/OPERATIONS.md,
// "From a version before the data key").
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Gateway, startGateway } from "../support/gateway.ts"
import { roundTrip } from "../support/nodes.ts"
import { hasRedisServer, skipReason, useRedis } from "../support/redis.ts"

const PATIENT = "pt_migrate_0001"
const OLD_EPOCH = "k3Jd92LqA1b2C3d4"

describe.skipIf(!hasRedisServer)(`a node on a Redis written before the data key${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  const server = useRedis()
  let gateway: Gateway
  beforeAll(async () => {
    // What a v1.1 node left: seq, epoch and five history entries under the raw channel name.
    const tag = `{patient:${PATIENT}}`
    const history = [5, 4, 3, 2, 1].map((seq) =>
      `${seq}|${JSON.stringify({ epoch: OLD_EPOCH, id: `evt_old_${seq}`, kind: "result.available", ref: "res_old_00001", at: "2026-12-06T10:00:00.000Z" })}`
    )
    await server.admin.multi().set(`tdg:${tag}:seq`, 5).set(`tdg:${tag}:epoch`, OLD_EPOCH).rpush(`tdg:${tag}:history`, ...history).exec()
    gateway = await startGateway({ TIDINGS_REDIS_URL: server.redis.url })
  })
  afterAll(async () => {
    await gateway?.close()
  })

  it("answers a resume from before the upgrade recovered: false, starts the channel anew, and delivers new events", async () => {
    const opened = await gateway.connect({ ticket: await gateway.ticket("patient", PATIENT) })
    if (opened.kind !== "open") throw new Error("refused")
    const { client } = opened
    client.send({ type: "subscribe", id: "s1", channel: `patient:${PATIENT}`, since: 3, epoch: OLD_EPOCH })
    const subscribed = await client.next((f) => f.type === "subscribed")
    expect(subscribed).toMatchObject({ recovered: false, seq: 0 })
    expect(subscribed.epoch).not.toBe(OLD_EPOCH)
    expect((await gateway.publish("svc_migrate_01", { channel: `patient:${PATIENT}`, kind: "result.available", ref: "res_new_00001" })).status).toBe(202)
    const event = await client.next((f) => f.type === "event")
    expect(event).toMatchObject({ seq: 1, ref: "res_new_00001", epoch: subscribed.epoch })
    await roundTrip(client, "after")
    expect(client.frames.filter((f) => f.type === "event").map((f) => f.ref)).toEqual(["res_new_00001"])
    // The old keys are left as they were (the operator removes them, OPERATIONS.md).
    expect(await server.admin.get(`tdg:{patient:${PATIENT}}:seq`)).toBe("5")
  })
})
