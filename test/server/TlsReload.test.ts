// Certificate reload without a restart: on file change and on SIGHUP, new handshakes get the new
// pair, open connections keep theirs, a bad pair is refused, and the TLS policy survives the swap.
import { X509Certificate } from "node:crypto"
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import * as https from "node:https"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as tls from "node:tls"
import { afterEach, describe, expect, it } from "vitest"
import { makeSelfSigned, type TlsMaterial } from "../../src/server/SelfSigned.ts"
import { serverOptions, watchCertificate } from "../../src/server/Tls.ts"

const POLL_MS = 5_000
// Longer than the watcher's debounce, so a reload that was going to happen has happened.

const selfSigned = () => makeSelfSigned({ hosts: ["localhost", "127.0.0.1"], days: 1 })
const fingerprint = (material: TlsMaterial) => new X509Certificate(material.cert).fingerprint256

const A = selfSigned()
const B = selfSigned()

type Handshake =
  | { readonly ok: true; readonly fingerprint: string | undefined }
  | { readonly ok: false; readonly code: string }

/** One fresh TLS connection to the server; the certificate is compared, not verified. */
const handshake = (port: number, options: tls.ConnectionOptions = {}): Promise<Handshake> =>
  new Promise((done) => {
    let finished = false
    const finish = (result: Handshake) => {
      if (finished) return
      finished = true
      clearTimeout(timer)
      socket.destroy()
      done(result)
    }
    const socket = tls.connect({ host: "127.0.0.1", port, servername: "localhost", rejectUnauthorized: false, ...options })
    socket.once("secureConnect", () => finish({ ok: true, fingerprint: socket.getPeerX509Certificate()?.fingerprint256 }))
    socket.once("error", (error: Error & { code?: string }) => finish({ ok: false, code: error.code ?? error.message }))
    socket.once("close", () => finish({ ok: false, code: "closed before the handshake completed" }))
    const timer = setTimeout(() => finish({ ok: false, code: "timeout" }), POLL_MS)
  })

const served = async (port: number) => {
  const result = await handshake(port)
  return result.ok ? result.fingerprint : `failed: ${result.code}`
}

const until = async (what: string, check: () => boolean | Promise<boolean>) => {
  const deadline = Date.now() + POLL_MS
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${POLL_MS} ms: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const cleanups: Array<() => void | Promise<void>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A temp dir holding pair A, an https server started from it, and the watch on its files. */
const setup = async (options: { readonly watchFiles?: boolean; readonly files?: { certFile: string; keyFile: string } } = {}) => {
  const dir = mkdtempSync(join(tmpdir(), "tidings-tls-reload-"))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  const files = options.files ?? { certFile: join(dir, "cert.pem"), keyFile: join(dir, "key.pem") }
  const write = (pair: { readonly cert: string; readonly key: string }) => {
    writeFileSync(files.certFile, pair.cert)
    writeFileSync(files.keyFile, pair.key)
  }
  if (options.files === undefined) write(A)

  const server = https.createServer({ ...serverOptions(A), keepAliveTimeout: 30_000 }, (_req, res) => res.end("ok"))
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  cleanups.push(() =>
    new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  )

  const reports: Array<"reloaded" | "refused"> = []
  // File events that found the pair already served: proof a check ran, kept apart from reports.
  const checks = { unchanged: 0 }
  const stop = watchCertificate(
    server,
    files,
    (outcome) => (outcome === "unchanged" ? checks.unchanged++ : reports.push(outcome)),
    options.watchFiles === undefined ? {} : { watchFiles: options.watchFiles }
  )
  cleanups.push(stop)
  return { dir, files, write, server, port: (server.address() as AddressInfo).port, reports, checks, stop }
}

describe("watchCertificate", () => {
  it("serves the new pair to new handshakes once both files are replaced", async () => {
    const { port, files, write, reports, checks } = await setup()
    expect(await served(port)).toBe(fingerprint(A))

    // Cert, then key a moment later but within the debounce: one reload, no refusal of cert B with key A.
    writeFileSync(files.certFile, B.cert)
    await pause(50)
    writeFileSync(files.keyFile, B.key)
    await until("cert B is served", async () => (await served(port)) === fingerprint(B))
    await until("the reload is reported", () => reports.length > 0)
    expect(reports).toEqual(["reloaded"])

    // The same bytes written again are checked, and are no change worth reporting.
    const checked = checks.unchanged
    write(B)
    await until("the rewritten files are checked", () => checks.unchanged > checked)
    expect(reports).toEqual(["reloaded"])
  })

  it("keeps a connection opened before the reload open and usable after it", async () => {
    const { port, write, reports } = await setup()
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false })
    cleanups.push(() => agent.destroy())
    // Read at the handshake: once a socket has gone back to the agent's pool it no longer shows its peer.
    const peers = new Map<tls.TLSSocket, string | undefined>()
    const get = () =>
      new Promise<{ body: string; socket: tls.TLSSocket; reused: boolean }>((resolve, reject) => {
        const req = https.get({ host: "127.0.0.1", port, path: "/", servername: "localhost", agent }, (res) => {
          let body = ""
          res.setEncoding("utf8")
          res.on("data", (chunk: string) => (body += chunk))
          res.on("end", () => resolve({ body, socket: req.socket as tls.TLSSocket, reused: req.reusedSocket }))
        })
        req.once("socket", (socket) => {
          const tlsSocket = socket as tls.TLSSocket
          tlsSocket.once("secureConnect", () => peers.set(tlsSocket, tlsSocket.getPeerX509Certificate()?.fingerprint256))
        })
        req.on("error", reject)
      })

    const before = await get()
    expect(before.body).toBe("ok")
    expect(peers.get(before.socket)).toBe(fingerprint(A))

    write(B)
    await until("cert B is served", async () => (await served(port)) === fingerprint(B))
    expect(reports).toContain("reloaded")

    const after = await get()
    expect(after.body).toBe("ok")
    expect(after.reused).toBe(true)
    expect(after.socket).toBe(before.socket)
    expect(peers.size).toBe(1)
  })

  it("reloads on SIGHUP, with no file watch at all", async () => {
    const { port, files, write, reports } = await setup({ watchFiles: false })
    const watching = await setup({ files })
    write(B)
    // A watcher on the same files, started after, has seen the change: one that watched would have too.
    await until("a watching reloader sees the change", () => watching.reports.includes("reloaded"))
    // Nothing watches the files: the old pair is still served until the signal.
    expect(reports).toEqual([])
    expect(await served(port)).toBe(fingerprint(A))

    process.emit("SIGHUP", "SIGHUP")
    expect(reports).toEqual(["reloaded"])
    expect(await served(port)).toBe(fingerprint(B))
  })

  it("refuses a mismatched pair and keeps serving the old one", async () => {
    const { port, write, reports } = await setup()
    const C = selfSigned()
    const D = selfSigned()
    write({ cert: C.cert, key: D.key })
    await until("the refusal is reported", () => reports.length > 0)
    expect(reports).toEqual(["refused"])
    expect(await served(port)).toBe(fingerprint(A))
  })

  it("refuses files that are not PEM, or missing, on SIGHUP too", async () => {
    const { port, write, files, reports } = await setup({ watchFiles: false })
    write({ cert: "not a certificate", key: "not a key" })
    process.emit("SIGHUP", "SIGHUP")
    rmSync(files.keyFile)
    process.emit("SIGHUP", "SIGHUP")
    expect(reports).toEqual(["refused", "refused"])
    expect(await served(port)).toBe(fingerprint(A))
  })

  it("keeps the TLS policy after a reload: a CBC-only TLS 1.2 client is still refused", async () => {
    const { port, write, reports } = await setup()
    const cbcOnly = { maxVersion: "TLSv1.2" as const, ciphers: "ECDHE-ECDSA-AES128-SHA" }

    // The same offer completes a handshake with a server that allows CBC, so the refusal is the policy.
    const control = tls.createServer({ ...B, minVersion: "TLSv1", ciphers: "ALL@SECLEVEL=0" }, (socket) => socket.end())
    await new Promise<void>((resolve) => control.listen(0, "127.0.0.1", resolve))
    cleanups.push(() => new Promise<void>((resolve) => control.close(() => resolve())))
    expect(await handshake((control.address() as AddressInfo).port, cbcOnly)).toMatchObject({ ok: true })

    write(B)
    await until("cert B is served", async () => (await served(port)) === fingerprint(B))
    expect(reports).toEqual(["reloaded"])
    expect(await handshake(port, cbcOnly)).toEqual({ ok: false, code: expect.stringMatching(/^ERR_SSL_.*ALERT/) })
    expect(await handshake(port, { maxVersion: "TLSv1.2" })).toMatchObject({ ok: true, fingerprint: fingerprint(B) })
  })

  it("follows a Kubernetes-style swap of the ..data symlink", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tidings-tls-k8s-"))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    // The atomic writer's layout: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/.
    const generation = (name: string, pair: TlsMaterial) => {
      mkdirSync(join(dir, name))
      writeFileSync(join(dir, name, "tls.crt"), pair.cert)
      writeFileSync(join(dir, name, "tls.key"), pair.key)
      symlinkSync(name, join(dir, "..data_tmp"))
      renameSync(join(dir, "..data_tmp"), join(dir, "..data"))
    }
    generation("..first", A)
    symlinkSync(join("..data", "tls.crt"), join(dir, "tls.crt"))
    symlinkSync(join("..data", "tls.key"), join(dir, "tls.key"))

    const { port, reports } = await setup({ files: { certFile: join(dir, "tls.crt"), keyFile: join(dir, "tls.key") } })
    expect(await served(port)).toBe(fingerprint(A))

    generation("..second", B)
    await until("cert B is served", async () => (await served(port)) === fingerprint(B))
    expect(reports).toEqual(["reloaded"])
  })

  it("stops: the SIGHUP listener is removed and file changes are no longer followed", async () => {
    const listeners = process.listenerCount("SIGHUP")
    const { port, files, write, reports, stop } = await setup()
    expect(process.listenerCount("SIGHUP")).toBe(listeners + 1)

    stop()
    stop()
    expect(process.listenerCount("SIGHUP")).toBe(listeners)

    const watching = await setup({ files })
    write(B)
    // A watcher started after this one has seen the change; this one, stopped, must not have.
    await until("a watching reloader sees the change", () => watching.reports.includes("reloaded"))
    expect(reports).toEqual([])
    expect(await served(port)).toBe(fingerprint(A))
  })

  it("still answers SIGHUP when the files' directory cannot be watched", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tidings-tls-nowatch-"))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const missing = join(dir, "not-yet")
    const { port, reports } = await setup({ files: { certFile: join(missing, "cert.pem"), keyFile: join(missing, "key.pem") } })

    mkdirSync(missing)
    writeFileSync(join(missing, "cert.pem"), B.cert)
    writeFileSync(join(missing, "key.pem"), B.key)
    process.emit("SIGHUP", "SIGHUP")
    expect(reports).toEqual(["reloaded"])
    expect(await served(port)).toBe(fingerprint(B))
  })
})
