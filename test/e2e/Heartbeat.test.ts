// The server's heartbeat: every TIDINGS_HEARTBEAT_S a ping; a client that does not answer
// within 10 s is cut, one that answers (as browsers and `ws` do on their own) stays.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Gateway, startGateway } from "../support/gateway.ts"

let gateway: Gateway
beforeAll(async () => {
  gateway = await startGateway({ TIDINGS_HEARTBEAT_S: "1" })
})
afterAll(() => gateway.close())

describe("heartbeat", () => {
  it("cuts a client that never answers pings, and keeps one that does", async () => {
    const silent = await gateway.connect({ ticket: await gateway.ticket("patient", "pt_beat_000001"), ws: { autoPong: false } })
    const polite = await gateway.connect({ ticket: await gateway.ticket("patient", "pt_beat_000002") })
    if (silent.kind !== "open" || polite.kind !== "open") throw new Error("expected open sockets")
    let pings = 0
    polite.ws.on("ping", () => pings++)
    const started = Date.now()
    const closed = await silent.client.closed
    const after = Date.now() - started
    // Terminated without a close frame: the client sees 1006.
    expect(closed.code).toBe(1006)
    expect(after).toBeGreaterThanOrEqual(9_000)
    expect(after).toBeLessThan(14_000)
    expect(pings).toBeGreaterThanOrEqual(8)
    polite.client.send({ type: "ping", id: "still-here" })
    expect(await polite.client.next((f) => f.type === "pong")).toEqual({ type: "pong", id: "still-here" })
    polite.ws.close()
  }, 30_000)
})
