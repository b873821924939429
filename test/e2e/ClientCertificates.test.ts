// Optional client-certificate authentication for services (TIDINGS_TLS_CLIENT_CA): service
// routes then need a certificate signed by that CA on top of their bearer token, while users
// (browsers, which have none) get tickets and sockets as before.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { request } from "node:https"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeSelfSigned } from "../../src/server/SelfSigned.ts"
import { type Gateway, startGateway } from "../support/gateway.ts"

// A self-signed client certificate, pinned as its own CA; and one the gateway does not trust.
const trusted = makeSelfSigned({ hosts: ["svc-scheduling.internal"], days: 1, clientAuth: true })
const stranger = makeSelfSigned({ hosts: ["svc-other.internal"], days: 1, clientAuth: true })
const dir = mkdtempSync(join(tmpdir(), "tidings-client-ca-"))
writeFileSync(join(dir, "ca.pem"), trusted.cert)

let gateway: Gateway
beforeAll(async () => {
  gateway = await startGateway({ TIDINGS_TLS_CLIENT_CA: join(dir, "ca.pem") })
})
afterAll(async () => {
  await gateway.close()
  rmSync(dir, { recursive: true, force: true })
})

const publishWith = (token: string, client?: { key: string; cert: string }) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const body = JSON.stringify({ channel: "patient:pt_mtls_000001", kind: "result.available", ref: "res_mtls_00001" })
    const req = request(new URL("/v1/events", gateway.base), {
      method: "POST",
      ca: gateway.ca,
      agent: false,
      ...(client === undefined ? {} : { key: client.key, cert: client.cert }),
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "content-length": Buffer.byteLength(body) }
    }, (res) => {
      let text = ""
      res.on("data", (chunk) => (text += chunk))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }))
    })
    req.on("error", reject)
    req.end(body)
  })

describe("client certificates for services", () => {
  it("refuses a service without a client certificate, or with one from another CA, even with a good token", async () => {
    const token = await gateway.token("service", "svc_scheduling")
    expect(await publishWith(token)).toEqual({ status: 401, body: JSON.stringify({ error: "unauthorized" }) })
    expect(await publishWith(token, stranger)).toEqual({ status: 401, body: JSON.stringify({ error: "unauthorized" }) })
  })

  it("accepts a service with a certificate from the CA and a good token", async () => {
    const token = await gateway.token("service", "svc_scheduling")
    const reply = await publishWith(token, trusted)
    expect(reply.status).toBe(202)
    expect(JSON.parse(reply.body)).toMatchObject({ channel: "patient:pt_mtls_000001", seq: 1 })
  })

  it("still needs the token: a certificate alone is not enough", async () => {
    expect((await publishWith("a.b.c", trusted)).status).toBe(401)
  })

  it("leaves users alone: tickets and sockets need no client certificate", async () => {
    const connected = await gateway.connect({ ticket: await gateway.ticket("patient", "pt_mtls_000001") })
    if (connected.kind !== "open") throw new Error(JSON.stringify(connected))
    connected.client.send({ type: "ping", id: "p" })
    expect(await connected.client.next((f) => f.type === "pong")).toEqual({ type: "pong", id: "p" })
    connected.ws.close()
  })
})
