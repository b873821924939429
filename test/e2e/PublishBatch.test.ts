// POST /v1/events/batch against a real node over HTTPS and wss://: up to 100 events, each
// answered in request order exactly as POST /v1/events would answer it alone (validated,
// authorized, rate-limited, idempotent, audited), one bad event never failing the others.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Client, type Gateway, startGateway } from "../support/gateway.ts"
import { roundTrip } from "../support/nodes.ts"
import { until } from "../support/wait.ts"

let gateway: Gateway
beforeAll(async () => {
  gateway = await startGateway()
})
afterAll(() => gateway?.close())

const event = (patient: string, ref: string, extra: Record<string, unknown> = {}) => ({
  channel: `patient:${patient}`, kind: "result.available", ref, ...extra
})

/** A patient's session subscribed to their channel. */
const subscriber = async (patient: string) => {
  const connected = await gateway.connect({ ticket: await gateway.ticket("patient", patient) })
  if (connected.kind !== "open") throw new Error(`expected an open socket, got ${JSON.stringify(connected)}`)
  connected.client.send({ type: "subscribe", id: "s", channel: `patient:${patient}` })
  await connected.client.next((f) => f.type === "subscribed")
  return connected
}

/** The events a session received, once every frame sent before now has arrived. */
const received = async (client: Client, id: string) => {
  await roundTrip(client, id)
  return client.frames.filter((f) => f.type === "event").map((f) => [f.seq, f.ref])
}

const published = async () => (await gateway.audit()).filter((r) => r.event === "event.published").length

const post = (body: string, token?: string) =>
  gateway.http("POST", "/v1/events/batch", {
    body,
    headers: { "content-type": "application/json", ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) }
  })

describe("POST /v1/events/batch", () => {
  it("answers every event in request order: good ones published and delivered, bad ones refused alone", async () => {
    const [a, b] = [await subscriber("pt_batch_mix_001"), await subscriber("pt_batch_mix_002")]
    const before = await published()
    const reply = await gateway.publishBatch("svc_batch_00001", [
      event("pt_batch_mix_001", "res_mix_000001"),
      event("pt_batch_mix_001", "res_mix_000002", { kind: "diagnosis.updated" }),
      { ...event("pt_batch_mix_001", "res_mix_000003"), channel: "ward:pt_batch_mix_001" },
      { ...event("pt_batch_mix_001", "res_mix_000004"), channel: "patient:*" },
      event("pt_batch_mix_001", "res_mix_000005", { text: "an extra field" }),
      42,
      event("pt_batch_mix_002", "res_mix_000006"),
      { channel: "patient:pt_batch_mix_001", kind: "result.available" },
      event("pt_batch_mix_001", "res_mix_000007")
    ])
    expect(reply.status).toBe(200)
    const bad = { error: "bad_request" }
    expect(reply.json()).toEqual({
      results: [
        { id: expect.stringMatching(/^evt_/), channel: "patient:pt_batch_mix_001", seq: 1 },
        bad, bad, bad, bad, bad,
        { id: expect.stringMatching(/^evt_/), channel: "patient:pt_batch_mix_002", seq: 1 },
        bad,
        { id: expect.stringMatching(/^evt_/), channel: "patient:pt_batch_mix_001", seq: 2 }
      ]
    })
    expect(await received(a.client, "a")).toEqual([[1, "res_mix_000001"], [2, "res_mix_000007"]])
    expect(await received(b.client, "b")).toEqual([[1, "res_mix_000006"]])
    // One event.published record per published event, none for the refused ones.
    expect(await published() - before).toBe(3)
    a.ws.close()
    b.ws.close()
  })

  it("publishes a channel's events in request order: seqs follow the batch", async () => {
    const { ws, client } = await subscriber("pt_batch_ord_001")
    const refs = Array.from({ length: 20 }, (_, i) => `res_order_${String(i).padStart(4, "0")}`)
    const reply = await gateway.publishBatch("svc_batch_00002", refs.map((ref) => event("pt_batch_ord_001", ref)))
    expect(reply.json().results.map((r: { seq: number }) => r.seq)).toEqual(refs.map((_, i) => i + 1))
    expect(await received(client, "o")).toEqual(refs.map((ref, i) => [i + 1, ref]))
    ws.close()
  })

  it("makes each event idempotent on its id, within one batch and across batches", async () => {
    const { ws, client } = await subscriber("pt_batch_idem_01")
    const before = await published()
    const events = [
      event("pt_batch_idem_01", "res_idem_00001", { id: "evt_batch_idem_01" }),
      event("pt_batch_idem_01", "res_idem_00002", { id: "evt_batch_idem_01" }),
      event("pt_batch_idem_02", "res_idem_00003", { id: "evt_batch_idem_01" })
    ]
    const first = await gateway.publishBatch("svc_batch_00003", events)
    expect(first.json()).toEqual({
      results: [
        { id: "evt_batch_idem_01", channel: "patient:pt_batch_idem_01", seq: 1 },
        { id: "evt_batch_idem_01", channel: "patient:pt_batch_idem_01", seq: 1 },
        // Idempotency is per channel: the same id on another channel is another event.
        { id: "evt_batch_idem_01", channel: "patient:pt_batch_idem_02", seq: 1 }
      ]
    })
    const again = await gateway.publishBatch("svc_batch_00003", events)
    expect(again.json()).toEqual(first.json())
    // The single route agrees: the id is taken on that channel.
    expect((await gateway.publish("svc_batch_00003", events[0]!)).json()).toEqual(first.json().results[0])
    expect(await received(client, "i")).toEqual([[1, "res_idem_00001"]])
    expect(await published() - before).toBe(2)
    ws.close()
  })

  it("accepts 1 and 100 events, and refuses with 400 a body that is not {\"events\":[1 to 100 items]}", async () => {
    const token = await gateway.token("service", "svc_batch_00004")
    // Long refs and ids, as a real service might send: 100 of them are over 16 KiB.
    const many = (n: number) =>
      Array.from({ length: n }, (_, i) =>
        event(`pt_batch_size_${String(i % 10).padStart(2, "0")}`, "res_size_".padEnd(64, "x"), { id: `evt_size_${n}_${i}_`.padEnd(64, "x") }))
    const hundred = await post(JSON.stringify({ events: many(100) }), token)
    // Over the single route's 16 KiB, within the batch route's 64 KiB.
    expect(Buffer.byteLength(JSON.stringify({ events: many(100) }))).toBeGreaterThan(16 * 1024)
    expect(hundred.status).toBe(200)
    expect(hundred.json().results).toHaveLength(100)
    expect(hundred.json().results.every((r: { seq?: number }) => typeof r.seq === "number")).toBe(true)
    expect((await post(JSON.stringify({ events: many(1) }), token)).status).toBe(200)
    const refused: ReadonlyArray<readonly [string, string]> = [
      ["no events", JSON.stringify({ events: [] })],
      ["101 events", JSON.stringify({ events: many(101) })],
      ["events not an array", JSON.stringify({ events: event("pt_batch_size_00", "res_size_00001") })],
      ["a bare array", JSON.stringify(many(2))],
      ["a single event", JSON.stringify(event("pt_batch_size_00", "res_size_00001"))],
      ["another field", JSON.stringify({ events: many(1), dryRun: true })],
      ["no body", ""],
      ["invalid JSON", "{\"events\":["],
      // Well-formed but for its size: trailing whitespace is valid JSON.
      ["over 64 KiB", JSON.stringify({ events: many(2) }) + " ".repeat(64 * 1024)]
    ]
    for (const [what, body] of refused) {
      const reply = await post(body, token)
      expect({ what, status: reply.status, body: reply.json() }).toEqual({ what, status: 400, body: { error: "bad_request" } })
    }
  })

  it("refuses the whole batch to a caller without a token (401) or without events:publish (403)", async () => {
    const body = JSON.stringify({ events: [event("pt_batch_auth_01", "res_auth_00001")] })
    const none = await post(body)
    expect({ status: none.status, body: none.json() }).toEqual({ status: 401, body: { error: "unauthorized" } })
    for (const [role, ref] of [["patient", "pt_batch_auth_01"], ["admin", "ad_batch_auth_1"]] as const) {
      const reply = await post(body, await gateway.token(role, ref))
      expect({ role, status: reply.status, body: reply.json() }).toEqual({ role, status: 403, body: { error: "forbidden" } })
    }
  })

  it("refuses the whole batch with 503 while the audit sink fails, publishing none of it", async () => {
    const before = await gateway.publishBatch("svc_batch_00005", [event("pt_batch_fail_01", "res_fail_00001")])
    expect(before.json().results[0].seq).toBe(1)
    gateway.failAuditWrites(true)
    // The sink's failure is noticed on a write: a publish under way is answered 503 (it took seq 2).
    expect((await gateway.publish("svc_batch_00005", event("pt_batch_fail_01", "res_fail_00002"))).status).toBe(503)
    await until(async () => (await gateway.http("GET", "/readyz")).status === 503, 5_000, "readyz 503")
    const refused = await gateway.publishBatch("svc_batch_00005", [
      event("pt_batch_fail_01", "res_fail_00003"),
      event("pt_batch_fail_02", "res_fail_00004")
    ])
    expect({ status: refused.status, body: refused.json() }).toEqual({ status: 503, body: { error: "unavailable" } })
    gateway.failAuditWrites(false)
    await until(async () => (await gateway.http("GET", "/readyz")).status === 200, 10_000, "readyz 200 again")
    // Nothing of the refused batch took a seq.
    const after = await gateway.publishBatch("svc_batch_00005", [
      event("pt_batch_fail_01", "res_fail_00005"),
      event("pt_batch_fail_02", "res_fail_00006")
    ])
    expect(after.json().results.map((r: { seq: number }) => r.seq)).toEqual([3, 1])
  })
})

describe("POST /v1/events/batch under a publish rate of 2 per second", () => {
  let limited: Gateway
  beforeAll(async () => {
    limited = await startGateway({ TIDINGS_RATE_PUBLISHES_PER_S: "2" })
  })
  afterAll(() => limited?.close())

  it("takes one token per event: the events past the bucket are answered rate_limited, the others published", async () => {
    const reply = await limited.publishBatch("svc_batch_rate1", Array.from({ length: 5 }, (_, i) =>
      event(`pt_batch_rate_0${i}`, "res_rate_00001")))
    expect(reply.status).toBe(200)
    const results: ReadonlyArray<{ error?: string }> = reply.json().results
    expect(results.filter((r) => r.error === "rate_limited")).toHaveLength(3)
    expect(results.filter((r) => r.error === undefined)).toHaveLength(2)
    const records = await limited.audit()
    expect(records.filter((r) => r.event === "event.published")).toHaveLength(2)
    expect(records.filter((r) => r.event === "rate.limited" && r.cause === "publish")).toHaveLength(3)
  })
})
