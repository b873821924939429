// Reconnects are cheap, and revocation still holds: over real HTTPS and wss://, a user's access
// token shown again is answered from the verifier's memory (counted on the metrics listener),
// and a revoked subject's token, though remembered, gets no ticket, and its sessions end 4409.
import { request } from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Gateway, startGateway } from "../support/gateway.ts"
import { freePort } from "../support/net.ts"
import { roundTrip } from "../support/nodes.ts"
import { parseExposition, valueOf } from "../server/exposition.ts"

let gateway: Gateway
let metricsPort: number
beforeAll(async () => {
  metricsPort = await freePort()
  gateway = await startGateway({ TIDINGS_METRICS_LISTEN: `127.0.0.1:${metricsPort}` })
})
afterAll(() => gateway?.close())

/** The access-token checks so far, by source (the registry is the process's: compare deltas). */
const checks = () =>
  new Promise<{ memory: number; signature: number }>((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: metricsPort, path: "/metrics", method: "GET" }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (body += chunk))
      res.on("end", () => {
        const samples = parseExposition(body)
        resolve({
          memory: valueOf(samples, "tidings_access_token_checks_total", { source: "memory" }),
          signature: valueOf(samples, "tidings_access_token_checks_total", { source: "signature" })
        })
      })
    })
    req.on("error", reject)
    req.end()
  })

const ticketFor = (token: string) =>
  gateway.http("POST", "/v1/tickets", {
    body: "{}",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` }
  })

const open = async (ticket: string) => {
  const connected = await gateway.connect({ ticket })
  if (connected.kind !== "open") throw new Error(`expected an open socket, got ${JSON.stringify(connected)}`)
  return connected
}

describe("a user's access token shown again", () => {
  it("is checked once, answered from memory on reconnects, and still refused once its subject is revoked", async () => {
    const subject = "pt_remember_0001"
    const token = await gateway.token("patient", subject)
    const admin = await gateway.token("admin", "ad_remember_001")
    const before = await checks()

    // A session, then two reconnects with the same token: one signature check in all.
    const tickets: Array<string> = []
    for (let i = 0; i < 3; i++) {
      const reply = await ticketFor(token)
      expect(reply.status).toBe(201)
      tickets.push(reply.json().ticket)
    }
    const live = await open(tickets[0]!)
    await roundTrip(live.client, "a")
    const afterTickets = await checks()
    expect({ memory: afterTickets.memory - before.memory, signature: afterTickets.signature - before.signature })
      .toEqual({ memory: 2, signature: 1 })

    const revoked = await gateway.http("POST", "/v1/admin/revocations", {
      body: JSON.stringify({ subject }),
      headers: { "content-type": "application/json", authorization: `Bearer ${admin}` }
    })
    expect(revoked.status).toBe(202)
    expect(await live.client.closed).toEqual({ code: 4409, reason: "session revoked" })

    // The remembered token passes verification, and is refused by the revocation all the same.
    const refused = await ticketFor(token)
    expect({ status: refused.status, body: refused.json() }).toEqual({ status: 401, body: { error: "unauthorized" } })
    // A ticket it got before the revocation opens no session either.
    expect(await (await open(tickets[1]!)).client.closed).toEqual({ code: 4401, reason: "unauthorized" })

    const after = await checks()
    // The admin's token was checked; the patient's was answered from memory once more.
    expect({ memory: after.memory - afterTickets.memory, signature: after.signature - afterTickets.signature })
      .toEqual({ memory: 1, signature: 1 })
  })
})
