// End to end over real wss:// and HTTPS against the real server on a free port: the happy
// path, every way the gate refuses a connection, and how a session answers bad behaviour.
import { SignJWT } from "jose"
import { createPrivateKey } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Gateway, ORIGIN, startGateway } from "../support/gateway.ts"
import { until } from "../support/wait.ts"

let gateway: Gateway
beforeAll(async () => {
  gateway = await startGateway()
})
afterAll(() => gateway.close())

const open = async (ticket?: string) => {
  const connected = await gateway.connect({ ticket })
  if (connected.kind !== "open") throw new Error(`expected an open socket, got ${JSON.stringify(connected)}`)
  return connected
}

describe("the notification flow", () => {
  it("delivers a published event to the patient's socket with its seq", async () => {
    const { ws, client } = await open(await gateway.ticket("patient", "pt_flow_000001"))
    expect(ws.protocol).toBe("tidings.v1")
    client.send({ type: "subscribe", id: "c1", channel: "patient:pt_flow_000001" })
    const subscribed = await client.next((f) => f.type === "subscribed")
    expect(subscribed).toEqual({
      type: "subscribed", id: "c1", channel: "patient:pt_flow_000001", epoch: expect.stringMatching(/^[A-Za-z0-9]{8,16}$/), seq: 0,
      recovered: false
    })
    const reply = await gateway.publish("svc_scheduling", {
      channel: "patient:pt_flow_000001", kind: "appointment.updated", ref: "apt_00000001"
    })
    expect(reply.status).toBe(202)
    const accepted = reply.json()
    expect(accepted).toMatchObject({ channel: "patient:pt_flow_000001", seq: 1 })
    expect(accepted.id).toMatch(/^evt_[A-Za-z0-9_-]+$/)
    const event = await client.next((f) => f.type === "event")
    expect(event).toEqual({
      type: "event", channel: "patient:pt_flow_000001", epoch: subscribed.epoch, seq: 1, id: accepted.id,
      kind: "appointment.updated", ref: "apt_00000001", at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/)
    })
    client.send({ type: "ping", id: "p1" })
    expect(await client.next((f) => f.type === "pong")).toEqual({ type: "pong", id: "p1" })
    ws.close(1000)
    expect((await client.closed).code).toBe(1000)
  })

  it("answers a ticket request with a 60 s ticket and CORS for an allowed origin only", async () => {
    const token = await gateway.token("patient", "pt_flow_000002")
    const allowed = await gateway.http("POST", "/v1/tickets", { headers: { authorization: `Bearer ${token}`, origin: ORIGIN } })
    expect(allowed.status).toBe(201)
    expect(allowed.json().expiresIn).toBe(60)
    expect(allowed.headers["access-control-allow-origin"]).toBe(ORIGIN)
    expect(allowed.headers["strict-transport-security"]).toBe("max-age=31536000; includeSubDomains")
    expect(allowed.headers["cache-control"]).toBe("no-store")
    expect(allowed.headers["x-content-type-options"]).toBe("nosniff")
    const foreign = await gateway.http("POST", "/v1/tickets", { headers: { authorization: `Bearer ${token}`, origin: "https://evil.example" } })
    expect(foreign.status).toBe(201)
    expect(Object.keys(foreign.headers).filter((h) => h.startsWith("access-control-"))).toEqual([])
    const preflight = await gateway.http("OPTIONS", "/v1/tickets", { headers: { origin: ORIGIN, "access-control-request-method": "POST" } })
    expect(preflight.status).toBe(204)
    expect(preflight.headers["access-control-allow-methods"]).toBe("POST")
    expect(preflight.headers["access-control-allow-headers"]).toBe("authorization, content-type")
    expect(preflight.headers["access-control-max-age"]).toBe("600")
    expect(preflight.headers["access-control-allow-credentials"]).toBeUndefined()
  })

  it("refuses a ticket without a valid access token, and bad bodies before anything else", async () => {
    expect((await gateway.http("POST", "/v1/tickets")).status).toBe(401)
    expect((await gateway.http("POST", "/v1/tickets", { headers: { authorization: "Bearer a.b.c" } })).json()).toEqual({ error: "unauthorized" })
    const token = await gateway.token("patient", "pt_flow_000003")
    const extra = await gateway.http("POST", "/v1/tickets", {
      body: JSON.stringify({ admin: true }),
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }
    })
    expect(extra.status).toBe(400)
    expect(extra.json()).toEqual({ error: "bad_request" })
    const huge = await gateway.publish("svc_scheduling", { channel: "patient:pt_flow_000003", kind: "appointment.updated", ref: "x".repeat(17_000) })
    expect(huge.status).toBe(400)
  })
})

describe("the WebSocket gate", () => {
  it("answers 403 to a wrong, missing or null Origin", async () => {
    const ticket = await gateway.ticket("patient", "pt_gate_000001")
    expect(await gateway.connect({ ticket, origin: "https://evil.example" })).toEqual({ kind: "rejected", status: 403 })
    expect(await gateway.connect({ ticket, origin: null })).toEqual({ kind: "rejected", status: 403 })
    expect(await gateway.connect({ ticket, origin: "null" })).toEqual({ kind: "rejected", status: 403 })
  })

  it("answers 400 without the tidings.v1 subprotocol", async () => {
    const ticket = await gateway.ticket("patient", "pt_gate_000002")
    expect(await gateway.connect({ protocols: [`ticket.${ticket}`] })).toEqual({ kind: "rejected", status: 400 })
    expect(await gateway.connect({ protocols: [] })).toEqual({ kind: "rejected", status: 400 })
  })

  it("never echoes the ticket and never negotiates permessage-deflate", async () => {
    const { ws, client } = await gateway.connect({
      ticket: await gateway.ticket("patient", "pt_gate_000003"),
      ws: { perMessageDeflate: true }
    }) as Extract<Awaited<ReturnType<Gateway["connect"]>>, { kind: "open" }>
    expect(ws.protocol).toBe("tidings.v1")
    expect(ws.extensions).toBe("")
    client.send({ type: "ping", id: "p" })
    await client.next((f) => f.type === "pong")
    ws.close()
  })

  it("closes 4401 for a missing, reused, expired, forged or foreign-audience ticket", async () => {
    const reason = { code: 4401, reason: "unauthorized" }
    expect(await (await open()).client.closed).toEqual(reason)

    const ticket = await gateway.ticket("patient", "pt_gate_000004")
    const first = await open(ticket)
    first.client.send({ type: "ping", id: "p" })
    await first.client.next((f) => f.type === "pong")
    expect(await (await open(ticket)).client.closed).toEqual(reason)

    const key = createPrivateKey(gateway.ticketKeyPem)
    const { calculateJwkThumbprint, exportJWK } = await import("jose")
    const { createPublicKey } = await import("node:crypto")
    const kid = await calculateJwkThumbprint(await exportJWK(createPublicKey(key)))
    const sign = (claims: Record<string, unknown>, exp: number, aud = "tidings-ws") =>
      new SignJWT({ role: "patient", ref: "pt_gate_000005", iam: Date.now(), sxp: exp + 3600, ...claims })
        .setProtectedHeader({ alg: "ES256", kid, typ: "tidings-ticket+jwt" })
        .setJti(`jti_${Math.random().toString(36).slice(2)}_0000000`)
        .setAudience(aud)
        .setIssuedAt()
        .setExpirationTime(exp)
        .sign(key)
    const now = Math.floor(Date.now() / 1000)
    expect(await (await open(await sign({}, now - 1))).client.closed).toEqual(reason)
    expect(await (await open(await sign({}, now + 60, "another-audience"))).client.closed).toEqual(reason)
    // Correctly signed and fresh, but never issued (its jti is not in the store).
    expect(await (await open(await sign({}, now + 60))).client.closed).toEqual(reason)
    const forged = ticket.slice(0, -4) + (ticket.endsWith("AAAA") ? "BBBB" : "AAAA")
    expect(await (await open(forged)).client.closed).toEqual(reason)
    first.ws.close()
  })
})

describe("a session", () => {
  it("answers a forbidden subscription with error/forbidden and stays open", async () => {
    const { ws, client } = await open(await gateway.ticket("patient", "pt_sess_000001"))
    client.send({ type: "subscribe", id: "s1", channel: "patient:pt_someone_else" })
    expect(await client.next((f) => f.type === "error")).toEqual({ type: "error", id: "s1", code: "forbidden" })
    client.send({ type: "ping", id: "p1" })
    expect(await client.next((f) => f.type === "pong")).toEqual({ type: "pong", id: "p1" })
    ws.close()
  })

  it("answers malformed frames with bad_request, then closes 4400 when they go on", async () => {
    const { client } = await open(await gateway.ticket("patient", "pt_sess_000002"))
    client.send("not json")
    expect(await client.next((f) => f.type === "error")).toEqual({ type: "error", code: "bad_request" })
    client.send({ type: "subscribe", id: "s1", channel: "patient:*" })
    client.send({ type: "launch", id: "x" })
    client.send({ type: "ping", id: "p", extra: 1 })
    expect(await client.closed).toEqual({ code: 4400, reason: "bad request" })
    expect(client.frames.filter((f) => f.code === "bad_request")).toHaveLength(3)
  })

  it("closes 1009 on a frame over 4 KiB", async () => {
    const { client } = await open(await gateway.ticket("patient", "pt_sess_000003"))
    client.send({ type: "ping", id: "x".repeat(5 * 1024) })
    expect(await client.closed).toEqual({ code: 1009, reason: "message too big" })
  })

  it("audits opening and closing without raw refs", async () => {
    const { ws, client } = await open(await gateway.ticket("patient", "pt_sess_000004"))
    client.send({ type: "ping", id: "p" })
    await client.next((f) => f.type === "pong")
    ws.close(1000)
    await client.closed
    // The session's closing record is appended as its fiber ends, just after the close frame.
    await until(async () => (await gateway.audit()).some((r) => r.event === "ws.closed" && r.close === 1000), 2_000, "ws.closed")
    const records = (await gateway.audit())
    expect(records.map((r) => r.event)).toEqual(expect.arrayContaining(["ticket.issued", "ticket.consumed", "ws.opened", "ws.closed"]))
    expect(JSON.stringify(records)).not.toContain("pt_sess_000004")
    expect(JSON.stringify(records)).not.toContain("pt_flow_000001")
  })
})
