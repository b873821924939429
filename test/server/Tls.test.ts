// The TLS policy of the only listener (contract §1, "no plaintext listener"): TLS 1.3, or 1.2
// with ECDHE and AEAD only; old protocols, CBC, RSA key exchange and plaintext are refused.
import { request as httpRequest } from "node:http"
import * as net from "node:net"
import * as tls from "node:tls"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { WebSocket } from "ws"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeSelfSigned } from "../../src/server/SelfSigned.ts"
import { type Gateway, startGateway } from "../support/gateway.ts"

type Handshake =
  | { readonly ok: true; readonly protocol: string | null; readonly cipher: tls.CipherNameAndProtocol; readonly alpn: string | false | null }
  | { readonly ok: false; readonly code: string }

const HANDSHAKE_TIMEOUT_MS = 5_000

/** One TLS handshake against 127.0.0.1:port, verified against `ca` as "localhost". */
const handshake = (port: number, options: tls.ConnectionOptions): Promise<Handshake> =>
  new Promise((resolve) => {
    let done = false
    const finish = (result: Handshake) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resolve(result)
    }
    const socket = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ...options })
    socket.once("secureConnect", () => finish({ ok: true, protocol: socket.getProtocol(), cipher: socket.getCipher(), alpn: socket.alpnProtocol }))
    socket.once("error", (error: Error & { code?: string }) => finish({ ok: false, code: error.code ?? error.message }))
    socket.once("close", () => finish({ ok: false, code: "closed before the handshake completed" }))
    const timer = setTimeout(() => finish({ ok: false, code: "timeout" }), HANDSHAKE_TIMEOUT_MS)
  })

/** A deliberately permissive TLS server: proves a client's offer is one that *can* handshake. */
const permissiveServer = async (material: { key: string; cert: string }) => {
  const server = tls.createServer({
    key: material.key,
    cert: material.cert,
    minVersion: "TLSv1",
    ciphers: "ALL@SECLEVEL=0"
  }, (socket) => socket.end())
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

/** A self-signed RSA certificate, so RSA key exchange is a choice the server could make. */
const rsaSelfSigned = () => makeSelfSigned({ hosts: ["localhost"], days: 1, keyType: "rsa" })

/** The handshake failed because the server sent an alert, not because the client gave up. */
const REFUSED = { ok: false, code: expect.stringMatching(/^ERR_SSL_.*ALERT/) }

const portOf = (gateway: Gateway) => Number(new URL(gateway.base).port)

let gateway: Gateway
let ecPort: number
let rsa: { key: string; cert: string }
let rsaGateway: Gateway
let rsaPort: number
let rsaDir: string
beforeAll(async () => {
  rsa = rsaSelfSigned()
  rsaDir = mkdtempSync(join(tmpdir(), "tidings-tls-"))
  writeFileSync(join(rsaDir, "cert.pem"), rsa.cert)
  writeFileSync(join(rsaDir, "key.pem"), rsa.key)
  ;[gateway, rsaGateway] = await Promise.all([
    startGateway(),
    startGateway({ TIDINGS_TLS_CERT_FILE: join(rsaDir, "cert.pem"), TIDINGS_TLS_KEY_FILE: join(rsaDir, "key.pem") })
  ])
  ecPort = portOf(gateway)
  rsaPort = portOf(rsaGateway)
})
afterAll(async () => {
  await Promise.all([gateway?.close(), rsaGateway?.close()])
  if (rsaDir !== undefined) rmSync(rsaDir, { recursive: true, force: true })
})

const AEAD_ECDHE = /^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/

describe("the TLS listener", () => {
  it("negotiates TLS 1.3 with a verified certificate", async () => {
    const result = await handshake(ecPort, { ca: gateway.ca })
    expect(result.ok).toBe(true)
    if (!result.ok) return
    expect(result.protocol).toBe("TLSv1.3")
    expect(result.cipher.name).toMatch(/^TLS_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)$/)
  })

  it("selects http/1.1 by ALPN when offered, handshakes without ALPN, and refuses an offer without http/1.1", async () => {
    expect(await handshake(ecPort, { ca: gateway.ca, ALPNProtocols: ["h2", "http/1.1"] })).toMatchObject({ ok: true, alpn: "http/1.1" })
    expect(await handshake(ecPort, { ca: gateway.ca })).toMatchObject({ ok: true, alpn: false })
    expect(await handshake(ecPort, { ca: gateway.ca, ALPNProtocols: ["h2"] })).toMatchObject(REFUSED)
  })

  it("negotiates an ECDHE AEAD suite with a client capped at TLS 1.2", async () => {
    const result = await handshake(ecPort, { ca: gateway.ca, maxVersion: "TLSv1.2" })
    expect(result.ok).toBe(true)
    if (!result.ok) return
    expect(result.protocol).toBe("TLSv1.2")
    expect(result.cipher.name).toMatch(AEAD_ECDHE)
  })

  it("negotiates an ECDHE AEAD suite on TLS 1.2 with an RSA certificate too", async () => {
    const result = await handshake(rsaPort, { ca: rsa.cert, maxVersion: "TLSv1.2" })
    expect(result.ok).toBe(true)
    if (!result.ok) return
    expect(result.cipher.name).toMatch(AEAD_ECDHE)
    expect(result.cipher.name).toMatch(/^ECDHE-RSA-/)
  })

  it("refuses clients limited to TLS 1.0 or 1.1 at the handshake", async () => {
    const ec = makeSelfSigned({ hosts: ["localhost"], days: 1 })
    const control = await permissiveServer(ec)
    try {
      for (const version of ["TLSv1", "TLSv1.1"] as const) {
        const offer = { minVersion: version, maxVersion: version, ciphers: "DEFAULT@SECLEVEL=0" }
        // The same client completes a handshake with a server that allows the old protocol...
        const accepted = await handshake(control.port, { ...offer, ca: ec.cert })
        expect(accepted, `${version} control`).toMatchObject({ ok: true, protocol: version })
        // ...and the gateway refuses it.
        const refused = await handshake(ecPort, { ...offer, ca: gateway.ca })
        expect(refused, version).toEqual(REFUSED)
      }
    } finally {
      await control.close()
    }
  })

  it("refuses a TLS 1.2 client offering only CBC suites", async () => {
    const ec = makeSelfSigned({ hosts: ["localhost"], days: 1 })
    const control = await permissiveServer(ec)
    try {
      for (const ciphers of ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA256"]) {
        const offer = { maxVersion: "TLSv1.2" as const, ciphers }
        expect(await handshake(control.port, { ...offer, ca: ec.cert }), `${ciphers} control`).toMatchObject({ ok: true })
        expect(await handshake(ecPort, { ...offer, ca: gateway.ca }), ciphers).toEqual(REFUSED)
      }
      // With an RSA certificate the server could pick ECDHE-RSA CBC suites: it must not.
      expect(await handshake(rsaPort, { ca: rsa.cert, maxVersion: "TLSv1.2", ciphers: "ECDHE-RSA-AES128-SHA" })).toEqual(REFUSED)
    } finally {
      await control.close()
    }
  })

  it("refuses a TLS 1.2 client offering only RSA key exchange", async () => {
    const control = await permissiveServer(rsa)
    try {
      for (const ciphers of ["AES128-GCM-SHA256", "AES256-GCM-SHA384"]) {
        const offer = { maxVersion: "TLSv1.2" as const, ciphers }
        // An RSA-certificate server *could* agree to static RSA key exchange...
        expect(await handshake(control.port, { ...offer, ca: rsa.cert }), `${ciphers} control`).toMatchObject({ ok: true })
        // ...the gateway never does, whatever its certificate.
        expect(await handshake(rsaPort, { ...offer, ca: rsa.cert }), `${ciphers} (RSA certificate)`).toEqual(REFUSED)
        expect(await handshake(ecPort, { ...offer, ca: gateway.ca }), `${ciphers} (EC certificate)`).toEqual(REFUSED)
      }
    } finally {
      await control.close()
    }
  })
})

describe("plaintext to the TLS port", () => {
  it("gets no HTTP answer to an http:// request", async () => {
    const outcome = await new Promise<{ status?: number; error?: string }>((resolve) => {
      const req = httpRequest({ host: "127.0.0.1", port: ecPort, path: "/healthz", method: "GET", agent: false }, (res) => {
        res.resume()
        resolve({ status: res.statusCode ?? 0 })
      })
      req.setTimeout(HANDSHAKE_TIMEOUT_MS, () => req.destroy(new Error("timeout")))
      req.on("error", (error: Error & { code?: string }) => resolve({ error: error.code ?? error.message }))
      req.end()
    })
    expect(outcome.status).toBeUndefined()
    expect(outcome.error).toBeDefined()
    expect(outcome.error).not.toBe("timeout")
  })

  it("answers a raw GET with at most a TLS alert, then closes", async () => {
    const { bytes, closed } = await new Promise<{ bytes: Buffer; closed: boolean }>((resolve) => {
      const chunks: Array<Buffer> = []
      const socket = net.connect(ecPort, "127.0.0.1", () => {
        socket.write("GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
      })
      const timer = setTimeout(() => {
        socket.destroy()
        resolve({ bytes: Buffer.concat(chunks), closed: false })
      }, HANDSHAKE_TIMEOUT_MS)
      socket.on("data", (chunk: Buffer) => chunks.push(chunk))
      socket.on("error", () => undefined)
      socket.once("close", () => {
        clearTimeout(timer)
        resolve({ bytes: Buffer.concat(chunks), closed: true })
      })
    })
    expect(closed).toBe(true)
    expect(bytes.toString("latin1")).not.toMatch(/HTTP\/1\.[01]/)
    // Either nothing, or a TLS record of content type 21 (alert).
    if (bytes.length > 0) expect(bytes[0]).toBe(0x15)
  })

  it("makes no WebSocket for a ws:// URL", async () => {
    const outcome = await new Promise<string>((resolve) => {
      const ws = new WebSocket(`ws://localhost:${ecPort}/v1/ws`, ["tidings.v1"], { origin: "https://app.example.test" })
      const timer = setTimeout(() => (ws.terminate(), resolve("timeout")), HANDSHAKE_TIMEOUT_MS)
      ws.once("open", () => (clearTimeout(timer), ws.terminate(), resolve("open")))
      ws.once("unexpected-response", (_req, res) => (clearTimeout(timer), res.resume(), resolve(`http ${res.statusCode}`)))
      ws.once("error", () => (clearTimeout(timer), resolve("error")))
    })
    expect(outcome).toBe("error")
  })
})
