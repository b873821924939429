// A publishing service's storage quota (TIDINGS_STORAGE_CHANNELS_PER_SERVICE,
// TIDINGS_STORAGE_BYTES_PER_SERVICE) on the real routes: over it, 429 with Retry-After and an
// audit record, other services unaffected; on Redis the quota is the cluster's, shared by nodes.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Gateway, startGateway } from "../support/gateway.ts"
import { useTwoNodes } from "../support/nodes.ts"
import { hasRedisServer, skipReason } from "../support/redis.ts"
import { until } from "../support/wait.ts"

const event = (n: number) => ({ channel: `patient:pt_quota_${String(n).padStart(5, "0")}`, kind: "result.available", ref: "res_quota_0001" })

describe("a service's storage quota", () => {
  let gateway: Gateway
  beforeAll(async () => {
    gateway = await startGateway({ TIDINGS_STORAGE_CHANNELS_PER_SERVICE: "2" })
  })
  afterAll(async () => {
    await gateway?.close()
  })

  it("counts a channel once however many events it gets, answers 429 with Retry-After once a service began its quota of channels, and lets another service go on", async () => {
    const statuses = []
    for (const n of [1, 1, 1, 2, 3]) statuses.push((await gateway.publish("svc_quota_00001", event(n))).status)
    // The quota holds for the day once reached (a publish's channel may be a new one; it is not read first).
    expect(statuses).toEqual([202, 202, 202, 202, 429])
    const refused = await gateway.publish("svc_quota_00001", event(2))
    expect(refused.status).toBe(429)
    expect(refused.json()).toEqual({ error: "rate_limited" })
    const retry = Number(refused.headers["retry-after"])
    expect(retry).toBeGreaterThan(0)
    expect(retry).toBeLessThanOrEqual(3600)
    expect((await gateway.publish("svc_quota_00002", event(4))).status).toBe(202)
    const records = await gateway.audit()
    expect(records.filter((r) => r.event === "rate.limited" && r.cause === "storage")).toHaveLength(2)
  })
})

describe.skipIf(!hasRedisServer)(`a service's storage quota across nodes${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  const nodes = useTwoNodes({ TIDINGS_STORAGE_CHANNELS_PER_SERVICE: "3" })

  it("is one quota: channels begun through one node count on the other within seconds", async () => {
    for (const n of [11, 12, 13]) expect((await nodes.a.publish("svc_quota_00003", event(n))).status).toBe(202)
    await until(async () => (await nodes.b.publish("svc_quota_00003", event(11))).status === 429, 5_000, "node b refuses")
    expect((await nodes.a.publish("svc_quota_00003", event(14))).status).toBe(429)
    expect((await nodes.b.publish("svc_quota_00004", event(15))).status).toBe(202)
  })
})
