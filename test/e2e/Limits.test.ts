// Connect and ticket limits, per address and per subject (contract §6: 4429 for a connect
// rate over its limit; HTTP 429 with Retry-After for tickets). Small limits are configured
// here so the test stays fast; the defaults are in Settings.ts.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Gateway, startGateway } from "../support/gateway.ts"

let gateway: Gateway
beforeAll(async () => {
  gateway = await startGateway({
    TIDINGS_RATE_CONNECTS_PER_MIN: "3",
    TIDINGS_RATE_CONNECTS_PER_IP_PER_MIN: "8",
    TIDINGS_RATE_TICKETS_PER_IP_PER_MIN: "12",
    TIDINGS_RATE_TICKETS_PER_MIN: "1000"
  })
})
afterAll(() => gateway.close())

const connectOutcome = async (ticket: string) => {
  const connected = await gateway.connect({ ticket })
  if (connected.kind !== "open") throw new Error(JSON.stringify(connected))
  connected.client.send({ type: "ping", id: "p" })
  const outcome = await Promise.race([
    connected.client.next((f) => f.type === "pong").then(() => "open" as const),
    connected.client.closed
  ])
  connected.ws.close()
  return outcome
}

describe("connect and ticket limits", () => {
  it("closes a subject's connects over its rate with 4429, per subject, and audits it", async () => {
    const outcomes = []
    for (let i = 0; i < 4; i++) outcomes.push(await connectOutcome(await gateway.ticket("patient", "pt_limit_000001")))
    expect(outcomes.slice(0, 3)).toEqual(["open", "open", "open"])
    expect(outcomes[3]).toEqual({ code: 4429, reason: "rate limited" })
    // Another subject from the same address is not affected by that subject's limit.
    expect(await connectOutcome(await gateway.ticket("patient", "pt_limit_000002"))).toBe("open")
    const limited = (await gateway.audit()).filter((r) => r.event === "rate.limited" && r.cause === "connect")
    expect(limited.length).toBeGreaterThanOrEqual(1)
    expect(JSON.stringify(limited)).not.toContain("pt_limit_000001")
  })

  it("closes connects over the per-address rate with 4429 before looking at the ticket", async () => {
    // 5 connects were made above from this address; the limit is 8 per minute.
    const outcomes = []
    for (let i = 0; i < 4; i++) outcomes.push(await connectOutcome(await gateway.ticket("patient", `pt_limit_ip_00${i}`)))
    expect(outcomes.slice(0, 3)).toEqual(["open", "open", "open"])
    expect(outcomes[3]).toEqual({ code: 4429, reason: "rate limited" })
    // Refused before the ticket is consumed: no ticket.consumed record for the refused one.
    const consumedFor = (await gateway.audit()).filter((r) => r.event === "ticket.consumed").length
    expect(consumedFor).toBe(8)
  })

  it("answers ticket requests over the per-address rate with 429 and Retry-After", async () => {
    // 9 tickets were issued above from this address; the limit is 12 per minute.
    const token = await gateway.token("patient", "pt_limit_000009")
    const statuses: Array<number> = []
    let refused: Awaited<ReturnType<Gateway["http"]>> | undefined
    for (let i = 0; i < 4; i++) {
      const reply = await gateway.http("POST", "/v1/tickets", { headers: { authorization: `Bearer ${token}` } })
      statuses.push(reply.status)
      if (reply.status === 429) refused = reply
    }
    expect(statuses).toEqual([201, 201, 201, 429])
    expect(refused!.json()).toEqual({ error: "rate_limited" })
    expect(Number(refused!.headers["retry-after"])).toBeGreaterThan(0)
  })
})
