// TLS session resumption across nodes and restarts: nodes given the same
// TIDINGS_TLS_RESUMPTION_KEY_FILE resume each other's TLS sessions (a reconnect after a deploy,
// or to another node behind the balancer, skips the certificate's signature); a node without it
// makes its own ticket keys at start and resumes none of them. The session context does not
// hang on the command line (Node's default), and changes with the client CA, so a node trusting
// another CA resumes no session whose client certificate an older one verified.
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { connect, type TLSSocket } from "node:tls"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sessionContext, serverOptions } from "../../src/server/Tls.ts"
import { makeSelfSigned } from "../../src/server/SelfSigned.ts"
import { type Gateway, startGateway } from "../support/gateway.ts"

/**
 * A TLS 1.3 connection to `gateway` (its own certificate as the CA: the gateways' self-signed
 * certificates share one name). Without `session`, it waits for the session ticket the server
 * sends after the handshake and returns it; with one, whether the server resumed it.
 */
const handshake = (gateway: Gateway, session?: Buffer) =>
  new Promise<{ readonly reused: boolean; readonly session?: Buffer }>((resolve, reject) => {
    const url = new URL(gateway.base)
    const socket: TLSSocket = connect({
      host: url.hostname,
      port: Number(url.port),
      servername: "localhost",
      ca: gateway.ca,
      minVersion: "TLSv1.3",
      ALPNProtocols: ["http/1.1"],
      ...(session === undefined ? {} : { session })
    })
    socket.once("error", reject)
    if (session === undefined) {
      socket.once("session", (ticket: Buffer) => {
        resolve({ reused: socket.isSessionReused(), session: ticket })
        socket.end()
      })
    } else {
      socket.once("secureConnect", () => {
        resolve({ reused: socket.isSessionReused() })
        socket.end()
      })
    }
  })

describe("TLS session resumption", () => {
  let dir: string
  let a: Gateway
  let b: Gateway
  let alone: Gateway
  let otherCa: Gateway

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tidings-resumption-"))
    const keyFile = join(dir, "resumption.key")
    writeFileSync(keyFile, randomBytes(32), { mode: 0o600 })
    a = await startGateway({ TIDINGS_TLS_RESUMPTION_KEY_FILE: keyFile })
    b = await startGateway({ TIDINGS_TLS_RESUMPTION_KEY_FILE: keyFile })
    alone = await startGateway()
    const caFile = join(dir, "client-ca.pem")
    writeFileSync(caFile, makeSelfSigned({ hosts: ["services.example.test"], days: 1 }).cert)
    otherCa = await startGateway({ TIDINGS_TLS_RESUMPTION_KEY_FILE: keyFile, TIDINGS_TLS_CLIENT_CA: caFile })
  }, 30_000)
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close(), alone?.close(), otherCa?.close()])
    rmSync(dir, { recursive: true, force: true })
  })

  it("resumes, on another node with the same resumption key, a session a node made", async () => {
    const first = await handshake(a)
    expect(first.reused).toBe(false)
    expect((await handshake(a, first.session)).reused).toBe(true)
    expect((await handshake(b, first.session)).reused).toBe(true)
  })

  it("resumes none on a node without it: its ticket keys are its own, made at start", async () => {
    const first = await handshake(a)
    expect((await handshake(alone, first.session)).reused).toBe(false)
    const own = await handshake(alone)
    expect((await handshake(alone, own.session)).reused).toBe(true)
    expect((await handshake(a, own.session)).reused).toBe(false)
  })

  it("resumes none on a node with the same key that trusts another client CA", async () => {
    const first = await handshake(a)
    expect((await handshake(otherCa, first.session)).reused).toBe(false)
    const own = await handshake(otherCa)
    expect((await handshake(otherCa, own.session)).reused).toBe(true)
  })

  it("names the session context after the client CA, not after the command line", () => {
    const ca = makeSelfSigned({ hosts: ["services.example.test"], days: 1 }).cert
    const material = makeSelfSigned({ hosts: ["localhost"], days: 1 })
    const before = serverOptions(material, ca).sessionIdContext
    const argv = process.argv
    process.argv = [...argv, "--another-release"]
    try {
      expect(serverOptions(material, ca).sessionIdContext).toBe(before)
    } finally {
      process.argv = argv
    }
    expect(before).toBe(sessionContext(ca))
    expect(sessionContext(undefined)).not.toBe(before)
  })
})
