// Refused authentication, authorization and upgrades are audited, and a flood of them cannot
// fill the disk: one record per (address, event, cause) per interval, with a count, and the
// address only as its keyed pseudonym. Over real HTTPS and wss:// to a real node.
import { it as effectIt } from "@effect/vitest"
import { Duration, Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { AuditRecord } from "../../src/interpreters/audit/Chain.ts"
import { pseudonymizer } from "../../src/interpreters/audit/Chain.ts"
import * as MemoryAudit from "../../src/interpreters/memory/AuditLog.ts"
import { MemoryAuditRecords } from "../../src/interpreters/memory/AuditLog.ts"
import { Refusals } from "../../src/programs/Refusals.ts"
import * as Settings from "../../src/services/Settings.ts"
import { type Gateway, ORIGIN, startGateway } from "../support/gateway.ts"
import { rawExchange, upgradeRequest } from "./support.ts"

const KEY = randomBytes(32)
const keyDir = mkdtempSync(join(tmpdir(), "tidings-refusals-"))
writeFileSync(join(keyDir, "audit.key"), KEY)
const withKey = { TIDINGS_AUDIT_KEY_FILE: join(keyDir, "audit.key") }
afterAll(() => rmSync(keyDir, { recursive: true, force: true }))

/** What the peer 127.0.0.1 is written as: its keyed pseudonym under the audit key. */
const PEER = pseudonymizer(KEY, "peer")("127.0.0.1")
const RAW_ADDRESSES = ["127.0.0.1", "::1", "::ffff:127.0.0.1"]

const portOf = (g: Gateway) => Number(new URL(g.base).port)
const refusalsIn = (records: ReadonlyArray<AuditRecord>, event: string) =>
  records.filter((r) => r.event === event).map(({ cause, count, origin, peer, result }) => ({ cause, count, origin, peer, result }))

/** N upgrades with a foreign Origin from this address, 20 at a time; each must be refused 403. */
const badOriginFlood = async (g: Gateway, n: number) => {
  const statuses: Array<number | undefined> = []
  for (let sent = 0; sent < n; sent += 20) {
    const batch = Array.from({ length: Math.min(20, n - sent) }, () =>
      rawExchange(portOf(g), g.ca, upgradeRequest({ origin: "https://evil.example.test", protocols: "tidings.v1" })))
    statuses.push(...(await Promise.all(batch)).map((answer) => answer.status))
  }
  expect(statuses).toEqual(Array.from({ length: n }, () => 403))
}

describe("refused HTTPS authentication and authorization", () => {
  let gateway: Gateway
  beforeAll(async () => {
    gateway = await startGateway(withKey)
  })
  afterAll(() => gateway?.close())

  it("audits a forged token (401) and a patient publishing, granting care or revoking and an admin asking for a ticket (403), one record per address and cause with its count", async () => {
    const json = (method: string, path: string, body: unknown, token: string) =>
      gateway.http(method, path, {
        body: JSON.stringify(body),
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` }
      })
    const patient = await gateway.token("patient", "pt_refused_0001")
    const admin = await gateway.token("admin", "ad_refused_0001")
    const forged = `${patient.slice(0, patient.lastIndexOf(".") + 1)}${Buffer.from("forged-signature").toString("base64url")}`
    const statuses = [
      (await json("POST", "/v1/tickets", {}, forged)).status,
      (await json("POST", "/v1/tickets", {}, forged)).status,
      (await json("POST", "/v1/events", { channel: "patient:pt_refused_0001", kind: "appointment.updated", ref: "apt_000000001" }, patient)).status,
      (await json("PUT", "/v1/care-relationships", { clinician: "cl_refused_0001", patient: "pt_refused_0001" }, patient)).status,
      (await json("POST", "/v1/admin/revocations", { subject: "pt_refused_0002" }, patient)).status,
      (await json("POST", "/v1/tickets", {}, admin)).status
    ]
    expect(statuses).toEqual([401, 401, 403, 403, 403, 403])
    const records = await gateway.audit()
    expect(refusalsIn(records, "auth.refused")).toEqual([
      { cause: "invalid", count: 2, origin: undefined, peer: PEER, result: "refused" },
      { cause: "forbidden", count: 4, origin: undefined, peer: PEER, result: "refused" }
    ])
    for (const raw of RAW_ADDRESSES) expect(JSON.stringify(records)).not.toContain(`"${raw}"`)
  })
})

describe("refused WebSocket upgrades", () => {
  it("writes one ws.rejected record with count N for N bad-Origin upgrades from one address within one interval", async () => {
    const gateway = await startGateway(withKey)
    try {
      const n = 120
      await badOriginFlood(gateway, n)
      // A second cause from the same address is a record of its own.
      const noSubprotocol = await rawExchange(portOf(gateway), gateway.ca, upgradeRequest({ origin: ORIGIN, protocols: "other" }))
      expect(noSubprotocol.status).toBe(400)
      const records = await gateway.audit()
      expect(refusalsIn(records, "ws.rejected")).toEqual([
        { cause: "origin", count: n, origin: undefined, peer: PEER, result: "refused" },
        { cause: "subprotocol", count: 1, origin: ORIGIN, peer: PEER, result: "refused" }
      ])
      for (const raw of RAW_ADDRESSES) expect(JSON.stringify(records)).not.toContain(`"${raw}"`)
    } finally {
      await gateway.close()
    }
  }, 60_000)

  it("writes the pending counts at a clean stop, before the seal", async () => {
    const gateway = await startGateway(withKey)
    await badOriginFlood(gateway, 5)
    await gateway.close()
    const records = await gateway.audit()
    expect(refusalsIn(records, "ws.rejected")).toEqual([{ cause: "origin", count: 5, origin: undefined, peer: PEER, result: "refused" }])
    const events = records.map((r) => r.event)
    expect(events.indexOf("ws.rejected")).toBeLessThan(events.indexOf("audit.closed"))
  }, 60_000)
})

describe("Refusals", () => {
  const layer = Refusals.layer(10_000).pipe(Layer.provideMerge(MemoryAudit.layer(KEY)), Layer.provideMerge(Settings.layer()))
  const refusal = { event: "ws.rejected", cause: "origin", peer: "203.0.113.9" } as const

  effectIt.effect("writes nothing before its interval has passed, then one record per address and cause, and counts afresh", () =>
    Effect.gen(function*() {
      const refusals = yield* Refusals
      const records = yield* MemoryAuditRecords
      const written = Effect.map(records.all, (all) => refusalsIn(all, "ws.rejected").map((r) => [r.peer, r.count]))
      for (let i = 0; i < 7; i++) yield* refusals.refused(refusal)
      yield* refusals.refused({ ...refusal, peer: "203.0.113.10" })
      yield* TestClock.adjust(Duration.seconds(9))
      expect(yield* written).toEqual([])
      yield* TestClock.adjust(Duration.seconds(1))
      const first = pseudonymizer(KEY, "peer")("203.0.113.9")
      const second = pseudonymizer(KEY, "peer")("203.0.113.10")
      expect(yield* written).toEqual([[first, 7], [second, 1]])
      yield* refusals.refused(refusal)
      yield* TestClock.adjust(Duration.seconds(10))
      expect(yield* written).toEqual([[first, 7], [second, 1], [first, 1]])
    }).pipe(Effect.provide(layer)))
})
