// The internal metrics listener end to end: a real node with TIDINGS_METRICS_LISTEN on a free
// loopback port, one flow through it, then the exposition read back. The registry is global
// to the test process, so series are compared before and after, never as absolute values.
import { request } from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DEFAULT_EVENT_KINDS } from "../../src/domain/Event.ts"
import { type Gateway, ORIGIN, startGateway } from "../support/gateway.ts"
import { freePort } from "../support/net.ts"
import { labelsOutsideSets, parseExposition, type Sample, valueOf } from "../server/exposition.ts"

let gateway: Gateway
let metricsPort: number
beforeAll(async () => {
  metricsPort = await freePort()
  gateway = await startGateway({ TIDINGS_METRICS_LISTEN: `127.0.0.1:${metricsPort}` })
})
afterAll(() => gateway.close())

const get = (path: string) =>
  new Promise<{ status: number; contentType: string | undefined; body: string }>((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: metricsPort, path, method: "GET" }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (body += chunk))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, contentType: res.headers["content-type"], body }))
    })
    req.on("error", reject)
    req.end()
  })

const scrape = async () => {
  const reply = await get("/metrics")
  expect(reply.status).toBe(200)
  expect(reply.contentType).toBe("text/plain; version=0.0.4; charset=utf-8")
  return { text: reply.body, samples: parseExposition(reply.body) }
}

/** Scrapes until `done` holds: a session's closing counters move just after the client sees its close. */
const scrapeUntil = async (done: (samples: ReadonlyArray<Sample>) => boolean) => {
  const deadline = Date.now() + 3_000
  for (;;) {
    const scraped = await scrape()
    if (done(scraped.samples) || Date.now() > deadline) return scraped
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe("the metrics listener", () => {
  it("counts a flow in bounded series, with no id, ref or foreign origin in any label", async () => {
    const before = (await scrape()).samples
    const delta = (samples: ReadonlyArray<Sample>, name: string, labels: Record<string, string> = {}) =>
      valueOf(samples, name, labels) - valueOf(before, name, labels)

    const { ws, client } = await (async () => {
      const connected = await gateway.connect({ ticket: await gateway.ticket("patient", "pt_metrics_000001") })
      if (connected.kind !== "open") throw new Error(`expected an open socket, got ${JSON.stringify(connected)}`)
      return connected
    })()
    client.send({ type: "subscribe", id: "m1", channel: "patient:pt_metrics_000001" })
    await client.next((f) => f.type === "subscribed")
    const ids: Array<string> = []
    for (const ref of ["apt_metrics_01", "apt_metrics_02", "apt_metrics_03"]) {
      const reply = await gateway.publish("svc_metrics", { channel: "patient:pt_metrics_000001", kind: "appointment.updated", ref })
      expect(reply.status).toBe(202)
      ids.push(reply.json().id)
    }
    await client.next((f) => f.type === "event" && f.seq === 3)
    client.send({ type: "subscribe", id: "m2", channel: "patient:pt_metrics_000002" })
    expect(await client.next((f) => f.type === "error" && f.id === "m2")).toMatchObject({ code: "forbidden" })
    client.send({ type: "ping", id: "m3" })
    await client.next((f) => f.type === "pong")
    client.send("not json")
    await client.next((f) => f.type === "error" && f.code === "bad_request")

    const foreign = await gateway.connect({ ticket: await gateway.ticket("patient", "pt_metrics_000003"), origin: "https://evil.example" })
    expect(foreign).toMatchObject({ kind: "rejected", status: 403 })
    const forged = await gateway.connect({ ticket: "pt_metrics_forged.ticket" })
    if (forged.kind !== "open") throw new Error("a bad ticket is refused by the session, after the upgrade")
    expect((await forged.client.closed).code).toBe(4401)
    expect((await gateway.http("POST", "/v1/tickets", { headers: { authorization: "Bearer a.b.c" } })).status).toBe(401)
    ws.close(1000)
    await client.closed

    const { text, samples } = await scrapeUntil((s) => delta(s, "tidings_closes_total", { code: "1000" }) >= 1)

    expect(delta(samples, "tidings_connects_total", { result: "opened" })).toBe(1)
    expect(delta(samples, "tidings_connects_total", { result: "refused" })).toBe(2)
    expect(delta(samples, "tidings_closes_total", { code: "1000" })).toBe(1)
    expect(delta(samples, "tidings_closes_total", { code: "4401" })).toBe(1)
    expect(delta(samples, "tidings_connections")).toBe(0)
    expect(delta(samples, "tidings_subscriptions")).toBe(0)
    expect(delta(samples, "tidings_client_messages_total", { type: "subscribe" })).toBe(2)
    expect(delta(samples, "tidings_client_messages_total", { type: "ping" })).toBe(1)
    expect(delta(samples, "tidings_client_messages_total", { type: "malformed" })).toBe(1)
    expect(delta(samples, "tidings_events_published_total", { kind: "appointment.updated" })).toBe(3)
    expect(delta(samples, "tidings_deliveries_total", { result: "sent" })).toBe(3)
    expect(delta(samples, "tidings_deliveries_total", { result: "refused" })).toBe(0)
    expect(delta(samples, "tidings_delivery_latency_ms_count")).toBe(3)
    // One handshake got as far as an open session; the refused ones are not timed.
    expect(delta(samples, "tidings_handshake_duration_ms_count")).toBe(1)
    expect(valueOf(samples, "tidings_audit_sink_up")).toBe(1)
    expect(delta(samples, "tidings_origin_rejections_total", { reason: "origin", origin: "other" })).toBe(1)
    expect(delta(samples, "tidings_auth_failures_total", { credential: "ticket", cause: "invalid" })).toBe(1)
    expect(delta(samples, "tidings_auth_failures_total", { credential: "token", cause: "invalid" })).toBe(1)

    // Nothing the test sent or was given back is a label value.
    const values = samples.flatMap((s) => Object.values(s.labels))
    for (const value of values) {
      expect(value).not.toMatch(/pt_metrics|apt_metrics|evt_|svc_metrics|evil\.example|forged/)
      expect(ids).not.toContain(value)
    }
    for (const id of ids) expect(text).not.toContain(id)
    expect(labelsOutsideSets(samples, { kinds: DEFAULT_EVENT_KINDS, origins: [ORIGIN] })).toEqual([])
  })

  it("serves only GET /metrics internally, and nothing on the public listener", async () => {
    expect((await get("/")).status).toBe(404)
    expect((await get("/metrics/extra")).status).toBe(404)
    expect((await gateway.http("GET", "/metrics")).status).toBe(404)
  })
})
