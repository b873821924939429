// Fail closed for every audited action, over real HTTPS and wss://: while the audit sink
// refuses writes, publishes, care changes, revocations and tickets are answered 503 and a new
// socket closes 4503, none of them acting; an action under way when the sink failed is answered
// 503 too, and its record still arrives. Once the sink takes writes again, all are served.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Gateway } from "../support/gateway.ts"
import { startGateway } from "../support/gateway.ts"
import { until } from "../support/wait.ts"

let gateway: Gateway
beforeAll(async () => {
  gateway = await startGateway()
})
afterAll(() => gateway?.close())

const SERVICE = "svc_audit_fc_01"
const PATIENT = "pt_audit_fc_0001"
const CHANNEL = `patient:${PATIENT}`
const CARE = { clinician: "cl_audit_fc_0001", patient: PATIENT }

// Content-Length is set by hand: Node's client sends a DELETE body without one otherwise.
const send = (method: string, path: string, body: unknown, token: string) => {
  const text = JSON.stringify(body)
  return gateway.http(method, path, {
    body: text,
    headers: { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)), authorization: `Bearer ${token}` }
  })
}

const ready = async () => (await gateway.http("GET", "/readyz")).status === 200

describe("with an audit sink that refuses writes", () => {
  it("refuses every audited action (503, 4503) without acting, and serves them again once the sink recovers", async () => {
    const service = await gateway.token("service", SERVICE)
    const admin = await gateway.token("admin", "adm_audit_fc_01")
    const patient = await gateway.token("patient", PATIENT)
    const ticket = await gateway.ticket("patient", PATIENT)
    const publish = (ref: string) => send("POST", "/v1/events", { channel: CHANNEL, kind: "result.available", ref }, service)

    gateway.failAuditWrites(true)
    // Under way as the sink fails: published (it takes seq 1), but its record is not durable,
    // so the service is told 503 and will retry; the record is kept.
    const underWay = await publish("res_under_way_01")
    expect({ status: underWay.status, body: underWay.json() }).toEqual({ status: 503, body: { error: "unavailable" } })
    await until(async () => !(await ready()), 5_000, "readyz 503")

    const refused = [
      await publish("res_refused_0001"),
      await send("PUT", "/v1/care-relationships", CARE, service),
      await send("DELETE", "/v1/care-relationships", CARE, service),
      await send("POST", "/v1/admin/revocations", { subject: PATIENT }, admin),
      await send("POST", "/v1/tickets", {}, patient)
    ]
    expect(refused.map((reply) => ({ status: reply.status, body: reply.json() })))
      .toEqual(refused.map(() => ({ status: 503, body: { error: "unavailable" } })))
    const session = await gateway.connect({ ticket })
    expect(session.kind).toBe("open")
    expect(await (session.kind === "open" ? session.client.closed : Promise.reject(new Error(session.kind))))
      .toEqual({ code: 4503, reason: "try again later" })

    gateway.failAuditWrites(false)
    // The writer retries on its own; nothing from outside.
    await until(ready, 10_000, "readyz 200 again")

    // The refused publish took no seq: the next one is 2.
    const after = await publish("res_after_00001")
    expect({ status: after.status, seq: after.json().seq }).toEqual({ status: 202, seq: 2 })
    expect((await send("PUT", "/v1/care-relationships", CARE, service)).status).toBe(204)
    expect((await send("DELETE", "/v1/care-relationships", CARE, service)).status).toBe(204)
    // The refused revocation did not act, and the 4503 did not burn the ticket: it opens now.
    const reopened = await gateway.connect({ ticket })
    expect(reopened.kind).toBe("open")
    if (reopened.kind === "open") reopened.ws.close()
    expect((await send("POST", "/v1/tickets", {}, patient)).status).toBe(201)
    expect((await send("POST", "/v1/admin/revocations", { subject: PATIENT }, admin)).status).toBe(202)

    const records = await gateway.audit()
    const count = (event: string) => records.filter((r) => r.event === event).length
    // One each for the publish under way (written after recovery) and the one after it.
    expect(count("event.published")).toBe(2)
    expect(count("relationship.granted")).toBe(1)
    expect(count("relationship.ended")).toBe(1)
    expect(count("ws.opened")).toBe(1)
    // Revoked in both roles: one record per role, from the one revocation that was served.
    expect(count("session.revoked")).toBe(2)
    expect(records.filter((r) => r.event === "ws.closed").map((r) => r.close)).toContain(4503)
  }, 30_000)
})
