// A subject is `role:ref`: a patient and a clinician who happen to share a ref are two
// subjects, with their own session caps and their own revocations (finding 7 of the
// enforcement review). Two real nodes on one real redis-server, over wss://.
import { describe, expect, it } from "vitest"
import type { Gateway } from "../support/gateway.ts"
import { roundTrip, useTwoNodes } from "../support/nodes.ts"
import { hasRedisServer, skipReason } from "../support/redis.ts"

describe.skipIf(!hasRedisServer)(`subject identity${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  const nodes = useTwoNodes({ TIDINGS_MAX_SESSIONS_PER_SUBJECT: "2" })

  const open = async (gateway: Gateway, role: "patient" | "clinician", ref: string) => {
    const connected = await gateway.connect({ ticket: await gateway.ticket(role, ref) })
    if (connected.kind !== "open") throw new Error(JSON.stringify(connected))
    await roundTrip(connected.client, "p")
    return connected
  }

  const revoke = async (gateway: Gateway, body: Record<string, unknown>) =>
    gateway.http("POST", "/v1/admin/revocations", {
      body: JSON.stringify(body),
      headers: { authorization: `Bearer ${await gateway.token("admin", "ad_identity_01")}`, "content-type": "application/json" }
    })

  it("revokes only the named role: the clinician with the patient's ref keeps their session", async () => {
    const ref = "shared_ref_0001"
    const patient = await open(nodes.b, "patient", ref)
    const clinician = await open(nodes.b, "clinician", ref)
    expect((await revoke(nodes.a, { subject: ref, role: "patient" })).status).toBe(202)
    expect(await patient.client.closed).toEqual({ code: 4409, reason: "session revoked" })
    // The clinician's session still answers after the patient's has closed.
    await roundTrip(clinician.client, "after")
    expect(clinician.ws.readyState).toBe(clinician.ws.OPEN)
    // And the clinician may still get tickets; the patient may not (its token predates the revocation).
    expect((await nodes.a.http("POST", "/v1/tickets", { headers: { authorization: `Bearer ${await nodes.a.token("clinician", ref)}` } })).status).toBe(201)
    clinician.ws.close()
  })

  it("revokes every role of the ref when no role is named", async () => {
    const ref = "shared_ref_0002"
    const patient = await open(nodes.a, "patient", ref)
    const clinician = await open(nodes.b, "clinician", ref)
    expect((await revoke(nodes.b, { subject: ref })).status).toBe(202)
    expect(await patient.client.closed).toEqual({ code: 4409, reason: "session revoked" })
    expect(await clinician.client.closed).toEqual({ code: 4409, reason: "session revoked" })
  })

  it("refuses a role that holds no sessions", async () => {
    expect((await revoke(nodes.a, { subject: "shared_ref_0003", role: "admin" })).status).toBe(400)
  })

  it("counts the session cap per role: a patient at the cap leaves the clinician's place free", async () => {
    const ref = "shared_ref_0004"
    const held = [await open(nodes.a, "patient", ref), await open(nodes.b, "patient", ref)]
    const clinician = await open(nodes.a, "clinician", ref)
    await roundTrip(clinician.client, "mine")
    // The patient is at its cap of 2; a third patient session is refused.
    const third = await nodes.b.connect({ ticket: await nodes.b.ticket("patient", ref) })
    if (third.kind !== "open") throw new Error(JSON.stringify(third))
    expect(await third.client.closed).toEqual({ code: 4430, reason: "too many sessions" })
    for (const s of [...held, clinician]) s.ws.close()
  })

  it("audits a revocation under the role's own pseudonym", async () => {
    const ref = "shared_ref_0005"
    expect((await revoke(nodes.a, { subject: ref, role: "clinician" })).status).toBe(202)
    const revoked = (await nodes.a.audit()).filter((r) => r.event === "session.revoked")
    const last = revoked.at(-1)!
    expect(last.subject).toMatch(/^[0-9a-f]{32}$/)
    // One record for one role; a record for each role when none is named.
    const before = revoked.length
    expect((await revoke(nodes.a, { subject: ref })).status).toBe(202)
    const after = (await nodes.a.audit()).filter((r) => r.event === "session.revoked")
    expect(after.length).toBe(before + 2)
    expect(new Set(after.slice(-2).map((r) => r.subject)).size).toBe(2)
    expect(after.slice(-2).map((r) => r.subject)).toContain(last.subject)
  })
})
