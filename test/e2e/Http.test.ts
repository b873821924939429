// The HTTPS endpoints of contract §2 against a real node: health, publishing, care
// relationships, revocation, the dev issuer, and access tokens from an external issuer.
import { type CryptoKey, decodeJwt, exportJWK, exportSPKI, generateKeyPair, type JWK, SignJWT } from "jose"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { request } from "node:https"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Client, type Gateway, type Reply, startGateway } from "../support/gateway.ts"

const SECURITY_HEADERS = {
  "strict-transport-security": "max-age=31536000; includeSubDomains",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff"
}

const JSON_HEADERS = { "content-type": "application/json" }

let gateway: Gateway
beforeAll(async () => {
  gateway = await startGateway()
})
afterAll(() => gateway?.close())

// Content-Length is set by hand: Node's client sends a DELETE body without one otherwise.
const post = (path: string, body: unknown, token?: string, method = "POST") => {
  const text = JSON.stringify(body)
  return gateway.http(method, path, {
    body: text,
    headers: {
      ...JSON_HEADERS,
      "content-length": String(Buffer.byteLength(text)),
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` })
    }
  })
}

const open = async (ticket: string): Promise<{ ws: import("ws").WebSocket; client: Client }> => {
  const connected = await gateway.connect({ ticket })
  if (connected.kind !== "open") throw new Error(`expected an open socket, got ${JSON.stringify(connected)}`)
  return connected
}

/** The socket answers a ping: it is open and has processed everything sent before. */
const roundTrip = async (client: Client, id: string) => {
  client.send({ type: "ping", id })
  expect(await client.next((f) => f.type === "pong" && f.id === id)).toEqual({ type: "pong", id })
}

const within = <A>(promise: Promise<A>, ms: number, what: string): Promise<A> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)
    promise.then((value) => (clearTimeout(timer), resolve(value)), (error) => (clearTimeout(timer), reject(error)))
  })

describe("health and unknown paths", () => {
  it("answers GET /healthz 200 with the security headers", async () => {
    const reply = await gateway.http("GET", "/healthz")
    expect(reply.status).toBe(200)
    expect(reply.headers).toMatchObject(SECURITY_HEADERS)
  })

  it("answers GET /readyz 200 while the memory interpreters answer", async () => {
    const reply = await gateway.http("GET", "/readyz")
    expect(reply.status).toBe(200)
    expect(reply.headers).toMatchObject(SECURITY_HEADERS)
  })

  it("answers an unknown path or method 404 not_found with the security headers", async () => {
    for (const [method, path] of [["GET", "/nope"], ["POST", "/v1/nope"], ["DELETE", "/healthz"], ["GET", "/v1/events"]] as const) {
      const reply = await gateway.http(method, path)
      expect(reply.status, `${method} ${path}`).toBe(404)
      expect(reply.json()).toEqual({ error: "not_found" })
      expect(reply.headers).toMatchObject(SECURITY_HEADERS)
    }
  })
})

describe("POST /v1/events", () => {
  const event = (patient: string, extra: Record<string, unknown> = {}) => ({
    channel: `patient:${patient}`, kind: "appointment.updated", ref: "apt_00000001", ...extra
  })

  it("refuses a caller without a token with 401 unauthorized", async () => {
    const reply = await post("/v1/events", event("pt_evt_00000001"))
    expect(reply.status).toBe(401)
    expect(reply.json()).toEqual({ error: "unauthorized" })
    expect(reply.headers).toMatchObject(SECURITY_HEADERS)
  })

  it("refuses a patient token with 403 forbidden", async () => {
    const reply = await post("/v1/events", event("pt_evt_00000002"), await gateway.token("patient", "pt_evt_00000002"))
    expect(reply.status).toBe(403)
    expect(reply.json()).toEqual({ error: "forbidden" })
  })

  it("refuses an admin token with 403 forbidden", async () => {
    const reply = await post("/v1/events", event("pt_evt_00000002"), await gateway.token("admin", "ad_evt_00000001"))
    expect(reply.status).toBe(403)
  })

  it("accepts a service's event with 202 and the channel's next seq", async () => {
    const first = await gateway.publish("svc_evt_0000001", event("pt_evt_00000003"))
    expect(first.status).toBe(202)
    expect(first.json()).toEqual({ id: expect.stringMatching(/^evt_[A-Za-z0-9_-]+$/), channel: "patient:pt_evt_00000003", seq: 1 })
    const second = await gateway.publish("svc_evt_0000001", event("pt_evt_00000003"))
    expect(second.json().seq).toBe(2)
  })

  it("refuses bad bodies with 400 bad_request", async () => {
    const cases: ReadonlyArray<readonly [string, unknown]> = [
      ["an unknown field", event("pt_evt_00000004", { text: "x" })],
      ["a kind outside the allowlist", event("pt_evt_00000004", { kind: "appointment.deleted" })],
      ["a wildcard channel", { ...event("pt_evt_00000004"), channel: "patient:*" }],
      ["a wildcard in a channel ref", { ...event("pt_evt_00000004"), channel: "patient:pt_evt_0000*" }],
      ["another channel kind", { ...event("pt_evt_00000004"), channel: "ward:pt_evt_00000004" }],
      ["a missing ref", { channel: "patient:pt_evt_00000004", kind: "appointment.updated" }],
      ["a ref of the wrong type", event("pt_evt_00000004", { ref: 12345678 })],
      ["an id with a space", event("pt_evt_00000004", { id: "evt 00000001" })],
      ["an array", [event("pt_evt_00000004")]]
    ]
    for (const [what, body] of cases) {
      const reply = await gateway.publish("svc_evt_0000002", body as Record<string, unknown>)
      expect(reply.status, what).toBe(400)
      expect(reply.json(), what).toEqual({ error: "bad_request" })
    }
  })

  it("refuses a body over 16 KiB, declared or streamed", async () => {
    const token = await gateway.token("service", "svc_evt_0000003")
    const big = JSON.stringify(event("pt_evt_00000005", { ref: "x".repeat(17 * 1024) }))
    const declared = await gateway.http("POST", "/v1/events", {
      body: big, headers: { ...JSON_HEADERS, authorization: `Bearer ${token}` }
    })
    expect(declared.status).toBe(400)
    expect(declared.json()).toEqual({ error: "bad_request" })

    // Chunked, with no Content-Length to trust.
    const streamed = await new Promise<Reply>((resolve, reject) => {
      const req = request(new URL("/v1/events", gateway.base), {
        method: "POST", ca: gateway.ca, agent: false,
        headers: { ...JSON_HEADERS, authorization: `Bearer ${token}`, "transfer-encoding": "chunked" }
      }, (res) => {
        let body = ""
        res.setEncoding("utf8")
        res.on("data", (chunk: string) => (body += chunk))
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) }))
      })
      req.on("error", reject)
      for (let i = 0; i < 3; i++) req.write(big.slice(i * 8192, (i + 1) * 8192))
      req.end(big.slice(3 * 8192))
    })
    expect(streamed.status).toBe(400)
    expect(streamed.json()).toEqual({ error: "bad_request" })
  })

  it("refuses a body that is not sent as JSON", async () => {
    const token = await gateway.token("service", "svc_evt_0000004")
    for (const type of ["text/plain", "application/x-www-form-urlencoded", "application/jsonp"]) {
      const reply = await gateway.http("POST", "/v1/events", {
        body: JSON.stringify(event("pt_evt_00000006")),
        headers: { "content-type": type, authorization: `Bearer ${token}` }
      })
      expect(reply.status, type).toBe(400)
      expect(reply.json()).toEqual({ error: "bad_request" })
    }
  })

  it("accepts the same id twice as one event: both 202 with the same seq", async () => {
    const body = event("pt_evt_00000007", { id: "evt_idem_00000001" })
    const first = await gateway.publish("svc_evt_0000005", body)
    const again = await gateway.publish("svc_evt_0000005", body)
    expect(first.status).toBe(202)
    expect(again.status).toBe(202)
    expect(again.json()).toEqual(first.json())
    expect(first.json()).toEqual({ id: "evt_idem_00000001", channel: "patient:pt_evt_00000007", seq: 1 })
    // The repeat did not take a place in the channel: the next event is seq 2.
    const next = await gateway.publish("svc_evt_0000005", event("pt_evt_00000007"))
    expect(next.json().seq).toBe(2)
  })

  it("never answers a repeated id with the channel of another service's event", async () => {
    // The idempotency key is the publishing service and the id: a second service reusing an id
    // for another patient publishes its own event, and learns nothing of the first.
    const first = await gateway.publish("svc_evt_0000006", event("pt_evt_00000009", { id: "evt_idem_00000003" }))
    expect(first.status).toBe(202)
    const other = await gateway.publish("svc_evt_0000007", event("pt_evt_00000010", { id: "evt_idem_00000003" }))
    expect(other.status).toBe(202)
    expect(other.json()).toEqual({ id: "evt_idem_00000003", channel: "patient:pt_evt_00000010", seq: 1 })
    expect(other.body).not.toContain("pt_evt_00000009")
  })

  it("delivers a repeated id to subscribers once", async () => {
    const { ws, client } = await open(await gateway.ticket("patient", "pt_evt_00000008"))
    client.send({ type: "subscribe", id: "s", channel: "patient:pt_evt_00000008" })
    await client.next((f) => f.type === "subscribed")
    const body = event("pt_evt_00000008", { id: "evt_idem_00000002" })
    await gateway.publish("svc_evt_0000005", body)
    await gateway.publish("svc_evt_0000005", body)
    await roundTrip(client, "p")
    expect(client.frames.filter((f) => f.type === "event")).toHaveLength(1)
    ws.close()
  })
})

describe("error answers never echo input", () => {
  const CANARY = "JohnDoeMRN123456"

  it("keeps a canary sent in every part of a refused request out of every body and header", async () => {
    const service = await gateway.token("service", "svc_canary_0001")
    const admin = await gateway.token("admin", "ad_canary_00001")
    const patient = await gateway.token("patient", "pt_canary_00001")
    const bearer = (token: string) => ({ ...JSON_HEADERS, authorization: `Bearer ${token}` })
    const valid = { channel: "patient:pt_canary_00001", kind: "appointment.updated", ref: "apt_00000001" }
    const replies: Array<readonly [string, Reply]> = []
    const send = async (what: string, method: string, path: string, body: string | undefined, headers: Record<string, string>) =>
      replies.push([what, await gateway.http(method, path, { ...(body === undefined ? {} : { body }), headers })])

    await send("unknown field", "POST", "/v1/events", JSON.stringify({ ...valid, [CANARY]: CANARY }), bearer(service))
    await send("bad kind", "POST", "/v1/events", JSON.stringify({ ...valid, kind: CANARY }), bearer(service))
    await send("unlisted kind", "POST", "/v1/events", JSON.stringify({ ...valid, kind: `mrn.${CANARY.toLowerCase()}` }), bearer(service))
    await send("bad channel", "POST", "/v1/events", JSON.stringify({ ...valid, channel: `patient:${CANARY}*` }), bearer(service))
    await send("bad ref", "POST", "/v1/events", JSON.stringify({ ...valid, ref: `${CANARY}<script>` }), bearer(service))
    await send("bad id", "POST", "/v1/events", JSON.stringify({ ...valid, id: `${CANARY} ` }), bearer(service))
    await send("forbidden publish", "POST", "/v1/events", JSON.stringify({ ...valid, ref: CANARY }), bearer(patient))
    await send("not JSON", "POST", "/v1/events", `{"ref":"${CANARY}"`, bearer(service))
    await send("wrong content type", "POST", "/v1/events", JSON.stringify({ ...valid, ref: CANARY }), { "content-type": "text/plain", authorization: `Bearer ${service}` })
    await send("too big", "POST", "/v1/events", JSON.stringify({ ...valid, ref: CANARY.repeat(1200) }), bearer(service))
    await send("bad bearer", "POST", "/v1/events", JSON.stringify(valid), bearer(`${CANARY}.${CANARY}.${CANARY}`))
    await send("malformed authorization", "POST", "/v1/events", JSON.stringify(valid), { ...JSON_HEADERS, authorization: CANARY })
    await send("unknown path", "GET", `/${CANARY}?mrn=${CANARY}`, undefined, {})
    await send("ticket body", "POST", "/v1/tickets", JSON.stringify({ [CANARY]: 1 }), bearer(patient))
    await send("care body", "PUT", "/v1/care-relationships", JSON.stringify({ clinician: `${CANARY}!`, patient: CANARY }), bearer(service))
    await send("care forbidden", "PUT", "/v1/care-relationships", JSON.stringify({ clinician: CANARY, patient: CANARY }), bearer(patient))
    await send("revocation body", "POST", "/v1/admin/revocations", JSON.stringify({ subject: `${CANARY}/..` }), bearer(admin))
    await send("revocation forbidden", "POST", "/v1/admin/revocations", JSON.stringify({ subject: CANARY }), bearer(service))
    await send("dev token role", "POST", "/dev/token", JSON.stringify({ role: CANARY, ref: CANARY }), JSON_HEADERS)

    expect(replies).toHaveLength(19)
    for (const [what, reply] of replies) {
      expect(reply.status, what).toBeGreaterThanOrEqual(400)
      expect(Object.keys(reply.json()), what).toEqual(["error"])
      expect(["bad_request", "unauthorized", "forbidden", "not_found"], what).toContain(reply.json().error)
      const everything = `${reply.body}\n${JSON.stringify(reply.headers)}`.toLowerCase()
      expect(everything, what).not.toContain(CANARY.toLowerCase())
    }
  })
})

describe("care relationships", () => {
  it("lets a clinician subscribe to a patient only while a relationship exists, and ends the live subscription when it is deleted", async () => {
    const service = await gateway.token("service", "svc_care_000001")
    const pair = { clinician: "cl_care_00000001", patient: "pt_care_00000001" }
    const channel = `patient:${pair.patient}`
    const { ws, client } = await open(await gateway.ticket("clinician", pair.clinician))

    // Deny by default: no relationship yet.
    client.send({ type: "subscribe", id: "s0", channel })
    expect(await client.next((f) => f.id === "s0")).toEqual({ type: "error", id: "s0", code: "forbidden" })

    const granted = await post("/v1/care-relationships", pair, service, "PUT")
    expect(granted.status).toBe(204)
    expect(granted.body).toBe("")
    expect(granted.headers).toMatchObject(SECURITY_HEADERS)

    client.send({ type: "subscribe", id: "s1", channel })
    expect(await client.next((f) => f.id === "s1")).toMatchObject({ type: "subscribed", id: "s1", channel })
    await gateway.publish("svc_care_000001", { channel, kind: "result.available", ref: "res_00000001" })
    expect(await client.next((f) => f.type === "event")).toMatchObject({ channel, ref: "res_00000001" })

    const ended = await post("/v1/care-relationships", pair, service, "DELETE")
    expect(ended.status).toBe(204)
    expect(await client.next((f) => f.type === "error" && f.id === undefined, 1_000)).toEqual({
      type: "error", code: "forbidden", channel
    })

    // Gone: no more events from that channel, and subscribing again is refused.
    await gateway.publish("svc_care_000001", { channel, kind: "result.available", ref: "res_00000002" })
    client.send({ type: "subscribe", id: "s2", channel })
    expect(await client.next((f) => f.id === "s2")).toEqual({ type: "error", id: "s2", code: "forbidden" })
    await roundTrip(client, "p")
    expect(client.frames.filter((f) => f.type === "event").map((f) => f.ref)).toEqual(["res_00000001"])
    ws.close()
  })

  it("leaves the clinician's other subscriptions and the patient's own subscription alone", async () => {
    const service = await gateway.token("service", "svc_care_000002")
    const pair = { clinician: "cl_care_00000002", patient: "pt_care_00000002" }
    expect((await post("/v1/care-relationships", pair, service, "PUT")).status).toBe(204)
    const clinician = await open(await gateway.ticket("clinician", pair.clinician))
    const patient = await open(await gateway.ticket("patient", pair.patient))
    clinician.client.send({ type: "subscribe", id: "own", channel: `clinician:${pair.clinician}` })
    clinician.client.send({ type: "subscribe", id: "pt", channel: `patient:${pair.patient}` })
    patient.client.send({ type: "subscribe", id: "me", channel: `patient:${pair.patient}` })
    await clinician.client.next((f) => f.id === "pt" && f.type === "subscribed")
    await clinician.client.next((f) => f.id === "own" && f.type === "subscribed")
    await patient.client.next((f) => f.id === "me" && f.type === "subscribed")

    expect((await post("/v1/care-relationships", pair, service, "DELETE")).status).toBe(204)
    await clinician.client.next((f) => f.type === "error" && f.channel === `patient:${pair.patient}`)

    await gateway.publish("svc_care_000002", { channel: `clinician:${pair.clinician}`, kind: "task.assigned", ref: "tsk_00000001" })
    await gateway.publish("svc_care_000002", { channel: `patient:${pair.patient}`, kind: "message.received", ref: "msg_00000001" })
    expect(await clinician.client.next((f) => f.type === "event")).toMatchObject({ ref: "tsk_00000001" })
    expect(await patient.client.next((f) => f.type === "event")).toMatchObject({ ref: "msg_00000001" })
    expect(patient.client.frames.filter((f) => f.type === "error")).toEqual([])
    clinician.ws.close()
    patient.ws.close()
  })

  it("refuses a patient's token with 403, for PUT and DELETE", async () => {
    const token = await gateway.token("patient", "pt_care_00000003")
    const pair = { clinician: "cl_care_00000003", patient: "pt_care_00000003" }
    for (const method of ["PUT", "DELETE"]) {
      const reply = await post("/v1/care-relationships", pair, token, method)
      expect(reply.status, method).toBe(403)
      expect(reply.json()).toEqual({ error: "forbidden" })
    }
    const { ws, client } = await open(await gateway.ticket("clinician", pair.clinician))
    client.send({ type: "subscribe", id: "s", channel: `patient:${pair.patient}` })
    expect(await client.next((f) => f.id === "s")).toEqual({ type: "error", id: "s", code: "forbidden" })
    ws.close()
  })

  it("refuses bodies with extra fields or an until on DELETE", async () => {
    const service = await gateway.token("service", "svc_care_000004")
    const pair = { clinician: "cl_care_00000004", patient: "pt_care_00000004" }
    expect((await post("/v1/care-relationships", { ...pair, role: "attending" }, service, "PUT")).status).toBe(400)
    expect((await post("/v1/care-relationships", { ...pair, until: "tomorrow" }, service, "PUT")).status).toBe(400)
    expect((await post("/v1/care-relationships", { ...pair, until: new Date().toISOString() }, service, "DELETE")).status).toBe(400)
  })

  it("treats an until in the past as no relationship, and one in the future as a relationship", async () => {
    const service = await gateway.token("service", "svc_care_000005")
    const past = { clinician: "cl_care_00000005", patient: "pt_care_00000005", until: new Date(Date.now() - 60_000).toISOString() }
    const future = { clinician: "cl_care_00000005", patient: "pt_care_00000006", until: new Date(Date.now() + 3_600_000).toISOString() }
    expect((await post("/v1/care-relationships", past, service, "PUT")).status).toBe(204)
    expect((await post("/v1/care-relationships", future, service, "PUT")).status).toBe(204)
    const { ws, client } = await open(await gateway.ticket("clinician", "cl_care_00000005"))
    client.send({ type: "subscribe", id: "past", channel: "patient:pt_care_00000005" })
    client.send({ type: "subscribe", id: "future", channel: "patient:pt_care_00000006" })
    expect(await client.next((f) => f.id === "past")).toEqual({ type: "error", id: "past", code: "forbidden" })
    expect(await client.next((f) => f.id === "future")).toMatchObject({ type: "subscribed", channel: "patient:pt_care_00000006" })
    ws.close()
  })
})

describe("care relationships that end by time", () => {
  // Contract §5: when a relationship ends, the affected subscriptions end at once. A PUT
  // that moves `until` into the past, or an `until` that passes, ends it as surely as DELETE.
  const subscribeTo = async (pair: { clinician: string; patient: string }, until: string) => {
    const service = await gateway.token("service", "svc_care_time_01")
    expect((await post("/v1/care-relationships", { ...pair, until }, service, "PUT")).status).toBe(204)
    const { ws, client } = await open(await gateway.ticket("clinician", pair.clinician))
    client.send({ type: "subscribe", id: "s", channel: `patient:${pair.patient}` })
    expect(await client.next((f) => f.id === "s")).toMatchObject({ type: "subscribed" })
    return { ws, client, service }
  }

  it("ends the live subscription when a PUT moves until into the past", async () => {
    const pair = { clinician: "cl_care_time_001", patient: "pt_care_time_001" }
    const channel = `patient:${pair.patient}`
    const { ws, client, service } = await subscribeTo(pair, new Date(Date.now() + 3_600_000).toISOString())
    const shortened = await post("/v1/care-relationships", { ...pair, until: new Date(Date.now() - 1_000).toISOString() }, service, "PUT")
    expect(shortened.status).toBe(204)
    await gateway.publish("svc_care_time_01", { channel, kind: "result.available", ref: "res_time_000001" })
    await roundTrip(client, "p")
    expect(client.frames.filter((f) => f.type === "event")).toEqual([])
    expect(client.frames).toContainEqual({ type: "error", code: "forbidden", channel })
    ws.close()
  })

  it("ends the live subscription when until passes", async () => {
    const pair = { clinician: "cl_care_time_002", patient: "pt_care_time_002" }
    const channel = `patient:${pair.patient}`
    const { ws, client } = await subscribeTo(pair, new Date(Date.now() + 1_000).toISOString())
    expect(await client.next((f) => f.type === "error" && f.channel === channel, 3_000)).toEqual({
      type: "error", code: "forbidden", channel
    })
    ws.close()
  })
})

describe("POST /v1/admin/revocations", () => {
  it("closes every open session of the subject with 4409 within 1 s and refuses its older tickets", async () => {
    const subject = "pt_revoke_000001"
    const first = await open(await gateway.ticket("patient", subject))
    const second = await open(await gateway.ticket("patient", subject))
    const bystander = await open(await gateway.ticket("patient", "pt_revoke_000002"))
    const staleToken = await gateway.token("patient", subject)
    const older = await gateway.ticket("patient", subject)
    await roundTrip(first.client, "a")
    await roundTrip(second.client, "b")

    const admin = await gateway.token("admin", "ad_revoke_00001")
    const started = Date.now()
    const reply = await post("/v1/admin/revocations", { subject }, admin)
    expect(reply.status).toBe(202)
    expect(reply.headers).toMatchObject(SECURITY_HEADERS)
    const closes = await within(Promise.all([first.client.closed, second.client.closed]), 1_000 - (Date.now() - started), "both sessions closed")
    expect(closes).toEqual([{ code: 4409, reason: "session revoked" }, { code: 4409, reason: "session revoked" }])

    // Another subject's session carries on.
    await roundTrip(bystander.client, "c")

    // A ticket issued before the revocation is refused, even though it was never used.
    expect(await (await open(older)).client.closed).toEqual({ code: 4401, reason: "unauthorized" })

    // The access token behind those tickets predates the revocation, so it gets no new ticket.
    const stale = await post("/v1/tickets", {}, staleToken)
    expect(stale.status).toBe(401)
    expect(stale.json()).toEqual({ error: "unauthorized" })

    // A token issued after it works. Token `iat` has whole seconds, and a token from the same
    // second as the revocation is refused, so the new one comes from the next second.
    const nextSecond = (Math.floor(Date.now() / 1000) + 1) * 1000
    await new Promise((resolve) => setTimeout(resolve, nextSecond - Date.now() + 5))
    const fresh = await open(await gateway.ticket("patient", subject))
    fresh.client.send({ type: "subscribe", id: "s", channel: `patient:${subject}` })
    expect(await fresh.client.next((f) => f.id === "s")).toMatchObject({ type: "subscribed" })
    await roundTrip(fresh.client, "d")
    fresh.ws.close()
    bystander.ws.close()
  })

  it("refuses a service, patient or clinician token with 403 and closes nothing", async () => {
    const subject = "pt_revoke_000003"
    const session = await open(await gateway.ticket("patient", subject))
    for (const role of ["service", "patient", "clinician"] as const) {
      const reply = await post("/v1/admin/revocations", { subject }, await gateway.token(role, `${role.slice(0, 2)}_revoke_0003`))
      expect(reply.status, role).toBe(403)
      expect(reply.json()).toEqual({ error: "forbidden" })
    }
    await roundTrip(session.client, "still-open")
    session.ws.close()
  })

  it("refuses without a token (401) and a bad subject (400)", async () => {
    expect((await post("/v1/admin/revocations", { subject: "pt_revoke_000004" })).status).toBe(401)
    const admin = await gateway.token("admin", "ad_revoke_00002")
    expect((await post("/v1/admin/revocations", { subject: "short" }, admin)).status).toBe(400)
    expect((await post("/v1/admin/revocations", { subject: "pt_revoke_000004", all: true }, admin)).status).toBe(400)
  })
})

describe("POST /dev/token (dev mode)", () => {
  it("mints a token carrying the role's scopes", async () => {
    const claims = async (role: string, ref: string) => {
      const reply = await post("/dev/token", { role, ref })
      expect(reply.status).toBe(200)
      expect(Object.keys(reply.json())).toEqual(["accessToken"])
      return decodeJwt(reply.json().accessToken)
    }
    expect(await claims("service", "svc_dev_0000001")).toMatchObject({
      role: "service", ref: "svc_dev_0000001", scope: "events:publish relationships:write"
    })
    expect(await claims("admin", "ad_dev_00000001")).toMatchObject({ role: "admin", ref: "ad_dev_00000001", scope: "sessions:revoke" })
    const patient = await claims("patient", "pt_dev_00000001")
    expect(patient).toMatchObject({ role: "patient", ref: "pt_dev_00000001" })
    expect(patient.scope).toBeUndefined()
    expect((await claims("clinician", "cl_dev_00000001")).scope).toBeUndefined()
    expect(typeof patient.exp).toBe("number")
  })

  it("refuses an unknown role or a bad ref with 400", async () => {
    for (const body of [{ role: "superuser", ref: "xx_dev_00000001" }, { role: "patient", ref: "pt" }, { role: "patient" }, { role: "admin", ref: "ad_dev_00000001", scope: "*" }]) {
      const reply = await post("/dev/token", body)
      expect(reply.status, JSON.stringify(body)).toBe(400)
      expect(reply.json()).toEqual({ error: "bad_request" })
    }
  })
})

describe("access tokens from an external issuer", () => {
  const ISSUER = "https://issuer.example"
  const AUDIENCE = "tidings"
  type Key = { readonly privateKey: CryptoKey; readonly publicKey: CryptoKey; readonly jwk: JWK }

  let external: Gateway
  let dir: string
  let rsa: Key
  let ec: Key
  let ed: Key
  let stranger: Key

  const keyPair = async (alg: "RS256" | "ES256" | "EdDSA", kid: string): Promise<Key> => {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
    return { privateKey, publicKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } }
  }

  beforeAll(async () => {
    ;[rsa, ec, ed, stranger] = await Promise.all([
      keyPair("RS256", "rsa-1"), keyPair("ES256", "ec-1"), keyPair("EdDSA", "ed-1"), keyPair("ES256", "stranger")
    ])
    dir = mkdtempSync(join(tmpdir(), "tidings-jwks-"))
    writeFileSync(join(dir, "jwks.json"), JSON.stringify({ keys: [rsa.jwk, ec.jwk, ed.jwk] }))
    external = await startGateway({
      TIDINGS_AUTH_ISSUER: ISSUER,
      TIDINGS_AUTH_AUDIENCE: AUDIENCE,
      TIDINGS_AUTH_JWKS_FILE: join(dir, "jwks.json")
    })
  })
  afterAll(async () => {
    await external?.close()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  const now = () => Math.floor(Date.now() / 1000)
  const patientClaims = (ref: string) => ({ role: "patient", ref })

  const sign = (
    key: Key,
    alg: string,
    claims: Record<string, unknown>,
    options: { iss?: string; aud?: string; exp?: number; nbf?: number; header?: Record<string, unknown> } = {}
  ) => {
    let jwt = new SignJWT(claims)
      .setProtectedHeader({ alg, kid: key.jwk.kid!, typ: "at+jwt", ...options.header })
      .setIssuer(options.iss ?? ISSUER)
      .setAudience(options.aud ?? AUDIENCE)
      .setIssuedAt(now() - 5)
      .setExpirationTime(options.exp ?? now() + 300)
    if (options.nbf !== undefined) jwt = jwt.setNotBefore(options.nbf)
    return jwt.sign(key.privateKey)
  }

  const ticketWith = (token: string) =>
    external.http("POST", "/v1/tickets", { headers: { authorization: `Bearer ${token}` } })

  const expectUnauthorized = async (token: string, what: string) => {
    const reply = await ticketWith(token)
    expect(reply.status, what).toBe(401)
    expect(reply.json(), what).toEqual({ error: "unauthorized" })
  }

  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

  it("has no dev issuer: POST /dev/token is 404", async () => {
    const reply = await external.http("POST", "/dev/token", {
      body: JSON.stringify({ role: "admin", ref: "ad_ext_00000001" }), headers: JSON_HEADERS
    })
    expect(reply.status).toBe(404)
    expect(reply.json()).toEqual({ error: "not_found" })
  })

  it("accepts RS256, ES256 and EdDSA tokens signed by the issuer's keys", async () => {
    for (const [key, alg, ref] of [[rsa, "RS256", "pt_ext_00000001"], [ec, "ES256", "pt_ext_00000002"], [ed, "EdDSA", "pt_ext_00000003"]] as const) {
      const reply = await ticketWith(await sign(key, alg, patientClaims(ref)))
      expect(reply.status, alg).toBe(201)
      expect(reply.json()).toMatchObject({ expiresIn: 60 })
      expect(decodeJwt(reply.json().ticket)).toMatchObject({ aud: "tidings-ws", ref })
    }
  })

  it("lets a service of the issuer publish with its scope", async () => {
    const token = await sign(ec, "ES256", { role: "service", client_id: "svc_ext_000001", scope: "events:publish" })
    const reply = await external.http("POST", "/v1/events", {
      body: JSON.stringify({ channel: "patient:pt_ext_00000004", kind: "task.assigned", ref: "tsk_00000001" }),
      headers: { ...JSON_HEADERS, authorization: `Bearer ${token}` }
    })
    expect(reply.status).toBe(202)
  })

  it("tolerates 30 s of clock skew on exp", async () => {
    const reply = await ticketWith(await sign(ec, "ES256", patientClaims("pt_ext_00000005"), { exp: now() - 10 }))
    expect(reply.status).toBe(201)
  })

  it("refuses an unsigned token (alg none)", async () => {
    const claims = { ...patientClaims("pt_ext_00000006"), iss: ISSUER, aud: AUDIENCE, iat: now(), exp: now() + 300 }
    await expectUnauthorized(`${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`, "alg none")
    await expectUnauthorized(`${b64({ alg: "none", kid: "rsa-1" })}.${b64(claims)}.`, "alg none with a known kid")
  })

  it("refuses HS256 signed with the issuer's public key as the secret", async () => {
    const pem = await exportSPKI(rsa.publicKey)
    for (const secret of [pem, JSON.stringify(rsa.jwk)]) {
      const token = await new SignJWT(patientClaims("pt_ext_00000007"))
        .setProtectedHeader({ alg: "HS256", kid: "rsa-1" })
        .setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt().setExpirationTime(now() + 300)
        .sign(new TextEncoder().encode(secret))
      await expectUnauthorized(token, "HS256")
    }
  })

  it("refuses a wrong audience, a wrong issuer, and an expired or not-yet-valid token", async () => {
    const claims = patientClaims("pt_ext_00000008")
    await expectUnauthorized(await sign(ec, "ES256", claims, { aud: "another-api" }), "audience")
    await expectUnauthorized(await sign(ec, "ES256", claims, { iss: "https://evil.example" }), "issuer")
    await expectUnauthorized(await sign(ec, "ES256", claims, { exp: now() - 60 }), "expired beyond the tolerance")
    await expectUnauthorized(await sign(ec, "ES256", claims, { nbf: now() + 120 }), "not before, beyond the tolerance")
  })

  it("refuses a key the issuer never published: unknown kid, or an embedded jwk", async () => {
    const claims = patientClaims("pt_ext_00000009")
    await expectUnauthorized(await sign(stranger, "ES256", claims), "unknown kid")
    const { kid: _kid, ...embedded } = stranger.jwk
    await expectUnauthorized(
      await sign(stranger, "ES256", claims, { header: { kid: undefined, jwk: embedded } }),
      "embedded jwk, no kid"
    )
    await expectUnauthorized(
      await sign(stranger, "ES256", claims, { header: { kid: "ec-1", jwk: embedded } }),
      "embedded jwk, a known kid"
    )
    // The issuer's own kid on a token the issuer's key did not sign.
    await expectUnauthorized(await sign(stranger, "ES256", claims, { header: { kid: "ec-1" } }), "known kid, other key")
  })

  it("refuses a token for a role it does not know or without a ref", async () => {
    await expectUnauthorized(await sign(ec, "ES256", { role: "superuser", ref: "pt_ext_00000010" }), "role")
    await expectUnauthorized(await sign(ec, "ES256", { role: "patient" }), "no ref")
  })
})
