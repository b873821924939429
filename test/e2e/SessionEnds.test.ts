// How a session's time runs out, over wss:// on real nodes with the shortest settings allowed:
// no client message for TIDINGS_IDLE_TIMEOUT_S closes 4410 "idle timeout" (the client waits for
// its user), the deadline its `welcome` announced closes 4408 "session expired" (the client
// reauthenticates). Both run at once, on two nodes: each waits out real seconds.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Gateway, startGateway } from "../support/gateway.ts"

describe.concurrent("the end of a session's time (v1.1)", () => {
  let idle: Gateway
  let short: Gateway

  beforeAll(async () => {
    ;[idle, short] = await Promise.all([
      startGateway({ TIDINGS_IDLE_TIMEOUT_S: "30" }),
      startGateway({ TIDINGS_SESSION_MAX_S: "60", TIDINGS_IDLE_TIMEOUT_S: "3600" })
    ])
  })
  afterAll(async () => {
    await Promise.all([idle?.close(), short?.close()])
  })

  const open = async (gateway: Gateway, ref: string) => {
    const connected = await gateway.connect({ ticket: await gateway.ticket("patient", ref) })
    if (connected.kind !== "open") throw new Error(JSON.stringify(connected))
    return { client: connected.client, welcome: await connected.client.next((f) => f.type === "welcome") }
  }

  it("closes 4410 \"idle timeout\" after TIDINGS_IDLE_TIMEOUT_S without a client message", async () => {
    const opened = Date.now()
    const { client, welcome } = await open(idle, "pt_ends_idle_001")
    expect(welcome.idleTimeoutS).toBe(30)
    expect(await client.closed).toEqual({ code: 4410, reason: "idle timeout" })
    // At most a sweep (1 s) late, never early.
    expect(Date.now() - opened).toBeGreaterThanOrEqual(30_000)
    expect(Date.now() - opened).toBeLessThan(33_000)
  }, 40_000)

  it("closes 4408 \"session expired\" at the deadline `welcome` announced, however active", async () => {
    const { client, welcome } = await open(short, "pt_ends_max_0001")
    const deadline = Date.parse(welcome.expiresAt)
    expect(deadline - Date.now()).toBeGreaterThan(55_000)
    expect(deadline - Date.now()).toBeLessThanOrEqual(60_000)
    // Active all along: a ping every 10 s keeps idleness out of it.
    const pings = setInterval(() => client.send({ type: "ping", id: "p" }), 10_000)
    try {
      expect(await client.closed).toEqual({ code: 4408, reason: "session expired" })
    } finally {
      clearInterval(pings)
    }
    expect(Date.now()).toBeGreaterThanOrEqual(deadline)
    expect(Date.now() - deadline).toBeLessThan(3_000)
  }, 70_000)
})
