// The real entry point (`node src/main.ts`) as a process: it announces itself, serves TLS with
// the certificate it wrote, stops cleanly on SIGTERM (1001 to every socket, exit 0), refuses
// bad settings with exit 78 and one line, and leaves a chained, pseudonymized audit file.
import { randomBytes } from "node:crypto"
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { request as httpRequest } from "node:http"
import { join } from "node:path"
import { WebSocket } from "ws"
import { describe, expect, it } from "vitest"
import { main } from "../../src/cli.ts"
import { freePort } from "../support/net.ts"
import {
  bounded, DEV_ORIGIN, EXIT_TIMEOUT_MS, exitOnly, expectOneLine, https, jsonLines, listening, run, startDev, useProcesses
} from "../support/process.ts"
import { until } from "../support/wait.ts"

useProcesses()

describe("node src/main.ts in dev mode", () => {
  it("logs a JSON 'listening' line and answers GET /healthz over TLS with the certificate it wrote", async () => {
    const { node, port, announced, ca } = await startDev()
    expect(announced).toMatchObject({ message: "listening", annotations: { mode: "dev", host: "127.0.0.1", port } })
    expect(ca).toMatch(/^-----BEGIN CERTIFICATE-----\n/)

    const health = await https(port, ca, "GET", "/healthz")
    expect(health.status).toBe(200)
    expect(health.headers["strict-transport-security"]).toBe("max-age=31536000; includeSubDomains")
    expect((await https(port, ca, "GET", "/readyz")).status).toBe(200)

    node.child.kill("SIGTERM")
    expect((await bounded(node.exited, EXIT_TIMEOUT_MS, "exit")).code).toBe(0)
  })

  it("closes a subscribed socket with 1001 'going away' on SIGTERM, logs 'shutting down' and exits 0", async () => {
    const { node, port, ca } = await startDev()
    const token = JSON.parse((await https(port, ca, "POST", "/dev/token", { role: "patient", ref: "pt_proc_00000001" })).body).accessToken
    const issued = await https(port, ca, "POST", "/v1/tickets", undefined, token)
    expect(issued.status).toBe(201)
    const ticket = JSON.parse(issued.body).ticket as string

    const ws = new WebSocket(`wss://localhost:${port}/v1/ws`, ["tidings.v1", `ticket.${ticket}`], { ca, origin: DEV_ORIGIN })
    const frames: Array<any> = []
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() }))
    )
    const subscribed = new Promise<void>((resolve, reject) => {
      ws.on("message", (data) => {
        const frame = JSON.parse(data.toString())
        frames.push(frame)
        if (frame.type === "subscribed") resolve()
      })
      ws.once("error", reject)
    })
    ws.once("open", () => ws.send(JSON.stringify({ type: "subscribe", id: "s1", channel: "patient:pt_proc_00000001" })))
    await bounded(subscribed, 5_000, "subscribed")

    node.child.kill("SIGTERM")
    expect(await bounded(closed, EXIT_TIMEOUT_MS, "socket closed")).toEqual({ code: 1001, reason: "going away" })
    const exit = await bounded(node.exited, EXIT_TIMEOUT_MS, "exit")
    expect(exit).toEqual({ code: 0, signal: null })
    const messages = jsonLines(node.stdout()).map((line) => line.message)
    expect(messages).toContain("shutting down")
    expect(messages.indexOf("listening")).toBeLessThan(messages.indexOf("shutting down"))
    expect(node.stderr()).toBe("")
  })

  it("writes a chained audit file of JSON lines with seq, prev and mac, and no raw ref", async () => {
    const { node, port, ca } = await startDev()
    const patient = "pt_proc_audit_0001"
    const token = JSON.parse((await https(port, ca, "POST", "/dev/token", { role: "patient", ref: patient })).body).accessToken
    const ticket = JSON.parse((await https(port, ca, "POST", "/v1/tickets", undefined, token)).body).ticket as string
    const ws = new WebSocket(`wss://localhost:${port}/v1/ws`, ["tidings.v1", `ticket.${ticket}`], { ca, origin: DEV_ORIGIN })
    await bounded(new Promise<void>((resolve, reject) => {
      ws.once("open", () => ws.send(JSON.stringify({ type: "subscribe", id: "s1", channel: `patient:${patient}` })))
      ws.on("message", (data) => JSON.parse(data.toString()).type === "subscribed" && resolve())
      ws.once("error", reject)
    }), 5_000, "subscribed")
    const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)))
    node.child.kill("SIGTERM")
    await bounded(closed, EXIT_TIMEOUT_MS, "socket closed")
    expect((await bounded(node.exited, EXIT_TIMEOUT_MS, "exit")).code).toBe(0)

    const auditDir = join(node.dir, "audit")
    const files = readdirSync(auditDir).filter((name) => name.endsWith(".jsonl"))
    expect(files).toHaveLength(1)
    const text = readFileSync(join(auditDir, files[0]!), "utf8")
    expect(text.endsWith("\n")).toBe(true)
    expect(text).not.toContain(patient)
    expect(text).not.toContain(ticket)
    expect(text).not.toContain(token)

    const records = jsonLines(text)
    expect(records.map((r) => r.event)).toEqual(expect.arrayContaining(
      ["ticket.issued", "ticket.consumed", "ws.opened", "subscribe.allowed", "ws.closed"]
    ))
    expect(records.find((r) => r.event === "ws.closed")).toMatchObject({ close: 1001, origin: DEV_ORIGIN })
    let prev = "0".repeat(64)
    records.forEach((record, i) => {
      expect(record.seq).toBe(i + 1)
      expect(record.prev).toBe(prev)
      expect(record.mac).toMatch(/^[0-9a-f]{64}$/)
      expect(typeof record.ts).toBe("string")
      expect(record.node).toBe("node-1")
      prev = record.mac
    })
    const subjects = records.filter((r) => r.subject !== undefined).map((r) => r.subject)
    expect(subjects.length).toBeGreaterThan(0)
    for (const subject of subjects) expect(subject).toMatch(/^[0-9a-f]{32}$/)
    expect(new Set(subjects).size).toBe(1)
    const channel = records.find((r) => r.event === "subscribe.allowed")!.channel
    expect(channel).toMatch(/^patient:[0-9a-f]{32}$/)
    // The patient's own channel carries the patient's own pseudonym (both of `patient:<ref>`).
    expect(channel).toBe(`patient:${subjects[0]}`)
  })
})

describe("node src/main.ts with an audit disk that refuses writes", () => {
  const http = (port: number, path: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = httpRequest({ host: "127.0.0.1", port, path, agent: false }, (res) => {
        let data = ""
        res.setEncoding("utf8")
        res.on("data", (chunk: string) => (data += chunk))
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: data }))
      })
      req.on("error", reject)
      req.end()
    })
  const sinkUp = async (metricsPort: number) => /^tidings_audit_sink_up (\S+)$/m.exec((await http(metricsPort, "/metrics")).body)?.[1]

  it("fails closed (readyz 503, tickets 503, sink gauge 0) and recovers on its own, losing no record", async () => {
    const port = await freePort()
    const metricsPort = await freePort()
    const node = run((dir) => {
      mkdirSync(join(dir, "audit"), { mode: 0o700 })
      writeFileSync(join(dir, "audit.key"), randomBytes(32))
      // Its first audit file is /dev/full: every write fails with ENOSPC, as on a full disk.
      symlinkSync("/dev/full", join(dir, "audit", "audit-node-1-000000000001.jsonl"))
      return {
        TIDINGS_LISTEN: `127.0.0.1:${port}`,
        TIDINGS_METRICS_LISTEN: `127.0.0.1:${metricsPort}`,
        TIDINGS_AUDIT_SINK: `file:${join(dir, "audit")}`,
        TIDINGS_AUDIT_KEY_FILE: join(dir, "audit.key")
      }
    })
    await listening(node)
    const ca = readFileSync(join(node.dir, ".data", "dev-cert.pem"), "utf8")
    await until(async () => (await https(port, ca, "GET", "/readyz")).status === 503, 10_000, "readyz 503")
    expect(await sinkUp(metricsPort)).toBe("0")
    expect((await https(port, ca, "GET", "/healthz")).status).toBe(200)
    const token = JSON.parse((await https(port, ca, "POST", "/dev/token", { role: "patient", ref: "pt_proc_full_0001" })).body).accessToken
    const refused = await https(port, ca, "POST", "/v1/tickets", undefined, token)
    expect({ status: refused.status, body: JSON.parse(refused.body) }).toEqual({ status: 503, body: { error: "unavailable" } })
    const failing = jsonLines(node.stdout()).find((line) => line.message?.startsWith("audit sink failing"))
    expect(failing).toMatchObject({ level: "ERROR", annotations: { sink: "file" } })

    rmSync(join(node.dir, "audit", "audit-node-1-000000000001.jsonl"))
    await until(async () => (await https(port, ca, "GET", "/readyz")).status === 200, 10_000, "readyz 200")
    expect(await sinkUp(metricsPort)).toBe("1")
    const issued = await https(port, ca, "POST", "/v1/tickets", undefined, token)
    expect(issued.status).toBe(201)

    node.child.kill("SIGTERM")
    expect((await bounded(node.exited, EXIT_TIMEOUT_MS, "exit")).code).toBe(0)
    const files = readdirSync(join(node.dir, "audit")).sort().map((name) => join(node.dir, "audit", name))
    expect(await main(["audit", "verify", "--key", join(node.dir, "audit.key"), ...files])).toBe(0)
    const events = files.flatMap((file) => jsonLines(readFileSync(file, "utf8"))).map((r) => r.event)
    expect(events[0]).toBe("audit.opened")
    expect(events).toContain("ticket.issued")
    expect(events.at(-1)).toBe("audit.closed")
  }, 40_000)
})

describe("node src/main.ts refusing to start", () => {

  it("exits 78 in production with nothing set, with one line naming the first missing setting", async () => {
    const result = await exitOnly({ TIDINGS_MODE: "production" })
    expect(result.code).toBe(78)
    expectOneLine(result.stderr, "TIDINGS_TLS_CERT_FILE ")
    expect(result.stdout).toBe("")
    // Nothing was made before the refusal: no dev certificate, no audit directory.
    expect(existsSync(join(result.dir, ".data"))).toBe(false)
  })

  it("exits 78 in production with the dev issuer enabled", async () => {
    const result = await exitOnly({
      TIDINGS_MODE: "production",
      TIDINGS_TLS_CERT_FILE: "/nonexistent/cert.pem",
      TIDINGS_TLS_KEY_FILE: "/nonexistent/key.pem",
      TIDINGS_ALLOWED_ORIGINS: "https://app.example.org",
      TIDINGS_REDIS_URL: "rediss://redis.internal:6380",
      TIDINGS_AUTH_ISSUER: "https://login.example.org",
      TIDINGS_AUTH_AUDIENCE: "tidings",
      TIDINGS_AUTH_JWKS_URL: "https://login.example.org/jwks",
      TIDINGS_TICKET_KEY_FILE: "/nonexistent/ticket.pem",
      TIDINGS_AUDIT_KEY_FILE: "/nonexistent/audit.key",
      TIDINGS_DEV_ISSUER: "true"
    })
    expect(result.code).toBe(78)
    expectOneLine(result.stderr, "TIDINGS_DEV_ISSUER ")
  })

  it("exits 78 on a TLS resumption key file under 32 bytes, naming the setting", async () => {
    const dir = join(process.cwd(), ".data", `resumption-${randomBytes(4).toString("hex")}`)
    mkdirSync(dir, { recursive: true })
    try {
      writeFileSync(join(dir, "short.key"), randomBytes(16))
      const result = await exitOnly({ TIDINGS_TLS_RESUMPTION_KEY_FILE: join(dir, "short.key") })
      expect(result.code).toBe(78)
      expectOneLine(result.stderr, "TIDINGS_TLS_RESUMPTION_KEY_FILE must hold at least 32 bytes")
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("exits 78 on TIDINGS_LISTEN=nonsense without repeating the value", async () => {
    const result = await exitOnly({ TIDINGS_LISTEN: "nonsense" })
    expect(result.code).toBe(78)
    expectOneLine(result.stderr, "TIDINGS_LISTEN ")
    expect(result.stderr).not.toContain("nonsense")
  })

  it("exits 78 on a malformed https JWKS URL without a stack trace or the value", async () => {
    const result = await exitOnly({
      TIDINGS_AUTH_ISSUER: "https://login.example.org",
      TIDINGS_AUTH_AUDIENCE: "tidings",
      TIDINGS_AUTH_JWKS_URL: "https://exa mple.org/JohnDoeMRN123456"
    })
    expect(result.stderr).not.toContain("JohnDoeMRN123456")
    expect(result.code).toBe(78)
    expectOneLine(result.stderr, "TIDINGS_AUTH_JWKS_URL ")
  })

  it("exits 69 with one line, never printing the URL, when Redis does not answer at start", async () => {
    // A loopback port nothing listens on: no traffic leaves the machine.
    const port = await freePort()
    const result = await exitOnly({ TIDINGS_REDIS_URL: `redis://:s3cretPassw0rd@127.0.0.1:${port}` })
    expect(result.code).toBe(69)
    expectOneLine(result.stderr, "TIDINGS_REDIS_URL ")
    expect(result.stderr).not.toContain("s3cretPassw0rd")
    expect(result.stderr).not.toContain(String(port))
  })
})
