// The dev-mode demo at /demo/: served only with the dev issuer (production can never have one:
// it exits 78, Process.test.ts), under a CSP that allows exactly what it does; /dev/token answers
// CORS for the dev allowed origins. The page itself runs in ClientDemoBrowser.test.ts.
import { generateKeyPairSync } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DEMO_CSP } from "../../src/server/Demo.ts"
import { type Gateway, ORIGIN, startGateway } from "../support/gateway.ts"

describe("/demo/ and /dev/token CORS with the dev issuer", () => {
  let gateway: Gateway
  beforeAll(async () => void (gateway = await startGateway()))
  afterAll(() => gateway?.close())

  it("serves the page, its script and the client build under the demo's CSP", async () => {
    for (const [path, type] of [["/demo/", "text/html"], ["/demo/demo.js", "text/javascript"], ["/demo/tidings-client.js", "text/javascript"]]) {
      const reply = await gateway.http("GET", path!)
      expect(reply.status, path).toBe(200)
      expect(reply.headers["content-type"], path).toContain(type)
      expect(reply.headers["content-security-policy"], path).toBe(DEMO_CSP)
      expect(reply.headers["strict-transport-security"], path).toBe("max-age=31536000; includeSubDomains")
    }
    expect(DEMO_CSP).toContain("connect-src 'self'")
    expect((await gateway.http("GET", "/demo/tidings-client.js")).body).toContain("Tidings")
    expect((await gateway.http("GET", "/demo/other")).status).toBe(404)
  })

  it("answers CORS on /dev/token for an allowed origin, preflight and POST, and for no other", async () => {
    const preflight = await gateway.http("OPTIONS", "/dev/token", { headers: { origin: ORIGIN, "access-control-request-method": "POST" } })
    expect(preflight.status).toBe(204)
    expect(preflight.headers).toMatchObject({
      "access-control-allow-origin": ORIGIN, "access-control-allow-methods": "POST",
      "access-control-allow-headers": "authorization, content-type", vary: "Origin"
    })
    const minted = await gateway.http("POST", "/dev/token", {
      body: JSON.stringify({ role: "patient", ref: "pt_demo_000001" }), headers: { "content-type": "application/json", origin: ORIGIN }
    })
    expect(minted.status).toBe(200)
    expect(minted.headers["access-control-allow-origin"]).toBe(ORIGIN)
    const stranger = await gateway.http("OPTIONS", "/dev/token", { headers: { origin: "https://elsewhere.example.test" } })
    expect(stranger.status).toBe(204)
    expect(stranger.headers["access-control-allow-origin"]).toBeUndefined()
  })
})

describe("without the dev issuer (as in production)", () => {
  let gateway: Gateway
  let dir: string
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tidings-demo-jwks-"))
    const jwk = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).publicKey.export({ format: "jwk" })
    writeFileSync(join(dir, "jwks.json"), JSON.stringify({ keys: [{ ...jwk, kid: "k1", alg: "ES256", use: "sig" }] }))
    gateway = await startGateway({
      TIDINGS_AUTH_ISSUER: "https://login.example.test", TIDINGS_AUTH_AUDIENCE: "tidings", TIDINGS_AUTH_JWKS_FILE: join(dir, "jwks.json")
    })
  })
  afterAll(async () => {
    await gateway?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it("has no /demo/ route and no CORS on /dev/token", async () => {
    for (const path of ["/demo/", "/demo/demo.js", "/demo/tidings-client.js"]) {
      const reply = await gateway.http("GET", path)
      expect(reply.status, path).toBe(404)
      expect(reply.headers["content-security-policy"], path).toBe("default-src 'none'; frame-ancestors 'none'")
    }
    const preflight = await gateway.http("OPTIONS", "/dev/token", { headers: { origin: ORIGIN } })
    expect(preflight.headers["access-control-allow-origin"]).toBeUndefined()
  })
})
