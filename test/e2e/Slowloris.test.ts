// Slow and silent clients hold nothing for long: a TCP connection that never starts its TLS
// handshake, an upgrade request whose headers never finish, and an oversized request head.
// Deadlines are configured short here; the defaults (10 s) are in Limits.ts.
import { connect as tcpConnect } from "node:net"
import { connect as tlsConnect } from "node:tls"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Gateway, startGateway } from "../support/gateway.ts"

let gateway: Gateway
beforeAll(async () => {
  gateway = await startGateway({ TIDINGS_HANDSHAKE_TIMEOUT_S: "1", TIDINGS_HEADERS_TIMEOUT_S: "1" })
})
afterAll(() => gateway.close())

const port = () => Number(new URL(gateway.base).port)

/** Resolves with how long the server kept the connection (ms). */
const heldFor = (socket: import("node:net").Socket) =>
  new Promise<number>((resolve) => {
    const started = Date.now()
    socket.on("error", () => undefined)
    socket.once("close", () => resolve(Date.now() - started))
  })

describe("slow clients", () => {
  it("cuts a TCP connection that never starts its TLS handshake", async () => {
    const socket = tcpConnect(port(), "127.0.0.1")
    const held = await heldFor(socket)
    expect(held).toBeGreaterThanOrEqual(900)
    expect(held).toBeLessThan(5_000)
  })

  it("cuts an upgrade request whose headers never finish (slowloris)", async () => {
    const socket = tlsConnect({ host: "127.0.0.1", port: port(), servername: "localhost", ca: gateway.ca })
    await new Promise<void>((resolve) => socket.once("secureConnect", () => resolve()))
    const held = heldFor(socket)
    socket.write("GET /v1/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n")
    // One more header line now and then, never the blank line that ends the head.
    const drip = setInterval(() => socket.writable && socket.write("X-Slow: 1\r\n"), 300)
    try {
      const ms = await held
      expect(ms).toBeLessThan(5_000)
    } finally {
      clearInterval(drip)
    }
  })

  it("answers 431 to a request head over the 8 KiB limit (Node alone would allow 16 KiB)", async () => {
    const reply = await gateway.http("GET", "/healthz", { headers: { "x-padding": "a".repeat(10 * 1024) } })
    expect(reply.status).toBe(431)
    const fits = await gateway.http("GET", "/healthz", { headers: { "x-padding": "a".repeat(6 * 1024) } })
    expect(fits.status).toBe(200)
  })
})
