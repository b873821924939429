// How a session ended is audited as it really ended: a connection cut without a close frame
// (the client vanished, or a flood `ws` or the network cut) is `ws.closed` with close 1006 and
// cause ConnectionLost, never a normal 1000. Over real wss:// to a real node.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Gateway, startGateway } from "../support/gateway.ts"
import { until } from "../support/wait.ts"

let gateway: Gateway
beforeAll(async () => {
  gateway = await startGateway()
})
afterAll(() => gateway?.close())

/** Opens a session and waits until the node has audited it open. */
const opened = async (ref: string) => {
  const connected = await gateway.connect({ ticket: await gateway.ticket("patient", ref) })
  expect(connected.kind).toBe("open")
  if (connected.kind !== "open") throw new Error("not open")
  const jti = async () => (await gateway.audit()).filter((r) => r.event === "ws.opened").at(-1)?.jti
  await until(async () => (await jti()) !== undefined, 5_000, "ws.opened")
  return { ...connected, jti: (await jti())! }
}

const closedRecord = async (jti: string) => {
  await until(async () => (await gateway.audit()).some((r) => r.event === "ws.closed" && r.jti === jti), 10_000, "ws.closed")
  const record = (await gateway.audit()).find((r) => r.event === "ws.closed" && r.jti === jti)!
  return { close: record.close, cause: record.cause }
}

describe("a session whose connection is cut", () => {
  it("audits a client that vanished without a close frame as close 1006, ConnectionLost", async () => {
    const { ws, jti } = await opened("pt_vanished_001")
    ws.terminate()
    expect(await closedRecord(jti)).toEqual({ close: 1006, cause: "ConnectionLost" })
  })

  it("audits a ping flood from a client that stops reading as close 1006, ConnectionLost, not a normal close", async () => {
    const { client, jti, ws } = await opened("pt_pingflood_01")
    const socket = (ws as unknown as { _socket: import("node:net").Socket })._socket
    socket.pause()
    const payload = Buffer.alloc(125, 1)
    const flood = setInterval(() => {
      for (let i = 0; i < 2_000 && ws.readyState === ws.OPEN; i++) ws.ping(payload)
    }, 5)
    try {
      await client.closed
    } finally {
      clearInterval(flood)
    }
    expect(await closedRecord(jti)).toEqual({ close: 1006, cause: "ConnectionLost" })
  })

  it("still audits a client's own close frame as a normal 1000 (the control)", async () => {
    const { ws, jti } = await opened("pt_closesok_001")
    ws.close(1000)
    expect(await closedRecord(jti)).toEqual({ close: 1000, cause: "ClosedNormally" })
  })
})
