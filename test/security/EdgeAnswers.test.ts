// What the edge answers before any route or session runs: requests Node's own parser refuses,
// and upgrades the gate refuses, carry every security header and close the connection; the
// request id a client is given counts nothing and cannot be guessed. Over real TLS.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Gateway, ORIGIN, startGateway } from "../support/gateway.ts"
import { rawExchange, upgradeRequest } from "./support.ts"

/** Contract §2: on every response, errors and refusals included. */
const EVERY_SECURITY_HEADER = {
  "strict-transport-security": "max-age=31536000; includeSubDomains",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY"
}

let gateway: Gateway
const port = () => Number(new URL(gateway.base).port)
beforeAll(async () => {
  gateway = await startGateway()
})
afterAll(() => gateway?.close())

const answerOf = async (request: string) => {
  const answer = await rawExchange(port(), gateway.ca, request)
  return { status: answer.status, headers: answer.headers, body: answer.body, closedByServer: answer.closedByServer }
}

describe("requests Node's parser refuses", () => {
  it("answers a malformed request line 400 with every security header, and closes", async () => {
    const answer = await answerOf("BLAH BLAH\r\n\r\n")
    expect(answer).toMatchObject({ status: 400, body: "", closedByServer: true })
    expect(answer.headers).toMatchObject({ ...EVERY_SECURITY_HEADER, connection: "close" })
  })

  it("answers a request head over the 8 KiB limit 431 with every security header, and closes", async () => {
    const answer = await answerOf(`GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Padding: ${"a".repeat(10 * 1024)}\r\n\r\n`)
    expect(answer).toMatchObject({ status: 431, body: "", closedByServer: true })
    expect(answer.headers).toMatchObject({ ...EVERY_SECURITY_HEADER, connection: "close" })
  })
})

describe("upgrades the gate refuses", () => {
  it("answers a wrong path, a foreign Origin, a malformed handshake and a missing subprotocol with every security header", async () => {
    const cases = [
      ["path", upgradeRequest({ target: "/v1/other", origin: ORIGIN, protocols: "tidings.v1" }), 404],
      ["origin", upgradeRequest({ origin: "https://evil.example.test", protocols: "tidings.v1" }), 403],
      ["handshake", upgradeRequest({ origin: ORIGIN, protocols: "tidings.v1", extra: { "Sec-WebSocket-Version": "8" } }).replace("Sec-WebSocket-Version: 13\r\n", ""), 400],
      ["subprotocol", upgradeRequest({ origin: ORIGIN, protocols: "other" }), 400]
    ] as const
    for (const [what, request, status] of cases) {
      const answer = await answerOf(request)
      expect({ what, status: answer.status, body: answer.body }).toEqual({ what, status, body: "" })
      expect(answer.headers, what).toMatchObject({ ...EVERY_SECURITY_HEADER, connection: "close" })
    }
  })
})

describe("x-request-id", () => {
  it("is 12 random bytes per request: no shared prefix, no counter", async () => {
    const ids: Array<string> = []
    for (let i = 0; i < 40; i++) ids.push(String((await gateway.http("GET", "/healthz")).headers["x-request-id"]))
    for (const id of ids) expect(id).toMatch(/^r-[A-Za-z0-9_-]{16}$/)
    // A counter behind a per-process prefix would share the prefix and differ only at the end.
    expect(new Set(ids.map((id) => id.slice(0, 8))).size).toBe(ids.length)
    expect(new Set(ids.map((id) => id.slice(-8))).size).toBe(ids.length)
  })
})
