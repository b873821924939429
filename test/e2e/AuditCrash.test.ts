// A node killed with SIGKILL in the middle of a publish load, as a real process over real
// HTTPS with a file audit sink: every 202 the client holds has its `event.published` record
// in the files (a 202 is sent only once its record's batch is fdatasync'd), and the trail
// shows the crash: no seal at its end, and the next start marks itself as following an
// unsealed end, which `tidings audit verify` reports.
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { Agent, request } from "node:https"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { afterAll, afterEach, describe, expect, it, vi } from "vitest"
import { main } from "../../src/cli.ts"
import { pseudonymizer } from "../../src/interpreters/audit/Chain.ts"
import { filesOf } from "../../src/interpreters/audit/FileSink.ts"
import { freePort } from "../support/net.ts"
import { until } from "../support/wait.ts"

const MAIN = resolve(import.meta.dirname, "../../src/main.ts")
const ROUNDS = 3
const PUBLISHES = 2_000
const CONCURRENCY = 48
/** The kill comes once this many 202s are in, so the load is in full swing. */
const KILL_AFTER = 700
const CHANNELS = Array.from({ length: 8 }, (_, i) => `pt_crash_0000000${i}`)

const dir = mkdtempSync(join(tmpdir(), "tidings-crash-"))
const auditDir = join(dir, "audit")
const keyFile = join(dir, "audit.key")
const key = randomBytes(32)
writeFileSync(keyFile, key)
const children = new Set<ChildProcess>()

afterEach(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  children.clear()
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Starts main.ts in the shared directory (so a restart finds the same audit files). */
const start = async () => {
  const port = await freePort()
  const child = spawn(process.execPath, [MAIN], {
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: dir,
      TIDINGS_LISTEN: `127.0.0.1:${port}`,
      TIDINGS_METRICS_LISTEN: `127.0.0.1:${await freePort()}`,
      TIDINGS_AUDIT_SINK: `file:${auditDir}`,
      TIDINGS_AUDIT_KEY_FILE: keyFile,
      // The load is the point here, not the publish limit.
      TIDINGS_RATE_PUBLISHES_PER_S: "1000000"
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  children.add(child)
  let stdout = ""
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
  child.stderr!.resume()
  const exited = new Promise<NodeJS.Signals | number | null>((done) => child.once("close", (code, signal) => done(signal ?? code)))
  await until(async () => stdout.includes("\"listening\""), 20_000, "listening")
  const ca = readFileSync(join(dir, ".data", "dev-cert.pem"), "utf8")
  const agent = new Agent({ keepAlive: true, ca, maxSockets: CONCURRENCY })
  const call = (method: string, path: string, body: unknown, token?: string) =>
    new Promise<{ status: number; body: string }>((done, fail) => {
      const text = JSON.stringify(body)
      const req = request({
        host: "localhost", port, method, path, agent,
        headers: {
          "content-type": "application/json",
          "content-length": String(Buffer.byteLength(text)),
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` })
        }
      }, (res) => {
        let data = ""
        res.setEncoding("utf8")
        res.on("data", (chunk: string) => (data += chunk))
        res.on("end", () => done({ status: res.statusCode ?? 0, body: data }))
        res.on("error", fail)
      })
      req.on("error", fail)
      req.end(text)
    })
  return { child, exited, call, agent }
}

/** Runs `tidings audit verify` on the node's files, with its exit code and what it printed. */
const verify = async (...flags: Array<string>) => {
  const files = filesOf(auditDir, "node-1").map((name) => join(auditDir, name))
  const printed: Array<string> = []
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((text) => (printed.push(String(text)), true))
  try {
    const code = await main(["audit", "verify", "--key", keyFile, ...flags, ...files])
    return { code, printed: printed.join("") }
  } finally {
    spy.mockRestore()
  }
}

const records = () =>
  filesOf(auditDir, "node-1").flatMap((name) =>
    readFileSync(join(auditDir, name), "utf8").split("\n").filter((line) => line.length > 0).map((line) => JSON.parse(line))
  )

/** Publishes from CONCURRENCY clients, kills the node once KILL_AFTER are answered, and counts the 202s per channel. */
const loadAndKill = async (acked: Map<string, number>) => {
  const node = await start()
  const token = JSON.parse((await node.call("POST", "/dev/token", { role: "service", ref: "svc_crash_00001" })).body).accessToken
  let answered = 0
  let next = 0
  const worker = async () => {
    while (next < PUBLISHES) {
      const ref = CHANNELS[next++ % CHANNELS.length]!
      const reply = await node.call("POST", "/v1/events", { channel: `patient:${ref}`, kind: "result.available", ref: "res_crash_0001" }, token)
        .catch(() => undefined)
      // Requests cut by the kill get no answer: they were never acknowledged.
      if (reply === undefined) return
      if (reply.status === 202) acked.set(ref, acked.get(ref)! + 1)
      if (++answered === KILL_AFTER) node.child.kill("SIGKILL")
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  node.agent.destroy()
  return { exit: await node.exited, answered }
}

describe("a node killed with SIGKILL under publish load", () => {
  it("leaves the record of every publish it answered 202, and the trail shows each crash", async () => {
    const acked = new Map<string, number>(CHANNELS.map((ref) => [ref, 0]))
    // Three crashes in a row (each start goes on from the last whole record): the window
    // between an answer and its record's write is short, so one kill alone might miss it.
    for (let round = 0; round < ROUNDS; round++) {
      const { exit, answered } = await loadAndKill(acked)
      expect(exit).toBe("SIGKILL")
      expect(answered).toBeGreaterThanOrEqual(KILL_AFTER)
    }

    // Every 202 has its record: per channel, at least as many records as 202s (a record may
    // also be there for a publish whose answer the kill cut off).
    const pseudonym = pseudonymizer(key)
    const published = records().filter((r) => r.event === "event.published")
    const missing = CHANNELS.map((ref) => {
      const written = published.filter((r) => r.channel === `patient:${pseudonym(`patient:${ref}`)}`).length
      return { ref, acked: acked.get(ref)!, missing: Math.max(0, acked.get(ref)! - written) }
    })
    expect(missing.filter((m) => m.missing > 0)).toEqual([])

    // Unsealed: whole records, no seal at the end.
    expect(await verify()).toMatchObject({ code: 1, printed: expect.stringMatching(/^BAD missing tail/) })
    expect(await verify("--open")).toMatchObject({ code: 0, printed: expect.stringMatching(/^OK \d+ records in 1 chain\(s\), open/) })

    // A clean start and stop: each start after a crash said it followed an unsealed end.
    const again = await start()
    again.agent.destroy()
    again.child.kill("SIGTERM")
    expect(await again.exited).toBe(0)
    const restarts = records().filter((r) => r.event === "audit.opened")
    expect(restarts.map((r) => r.cause)).toEqual(["new", ...Array.from({ length: ROUNDS }, () => "unsealed")])
    const verdict = await verify()
    expect(verdict.code).toBe(0)
    for (const restart of restarts.slice(1)) {
      expect(verdict.printed).toContain(`NOTE restart after an unsealed end at seq ${restart.seq}`)
    }
  }, 120_000)
})
