// Every failure to start says why in one line with a documented exit code, and leaves nothing
// half-written: a missing key file (78), a data directory or audit files held by a running node
// (75), a port in use (75), a Node too old (78), the demo without a running node (69).
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { describe, expect, it } from "vitest"
import { freePort } from "../support/net.ts"
import { until } from "../support/wait.ts"
import { bounded, EXIT_TIMEOUT_MS, exitOnly, expectOneLine, https, listening, MAIN, run, useProcesses } from "../support/process.ts"

useProcesses()

const ROOT = resolve(import.meta.dirname, "../..")


const digest = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex")

/** Every file under the node's audit directory with its content hash. */
const auditState = (dir: string) =>
  Object.fromEntries(readdirSync(join(dir, "audit")).map((name) => [name, digest(join(dir, "audit", name))]))

/** Runs a command to its exit with a bounded wait; stdout and stderr kept. */
const exec = (command: string, args: ReadonlyArray<string>, cwd: string, env: Record<string, string> = {}) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
    const child = spawn(command, [...args], { cwd, env: { PATH: process.env.PATH ?? "", HOME: cwd, ...env } })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.once("close", (code) => done({ code, stdout, stderr }))
  })

describe("starting node src/main.ts", () => {
  it("exits 78 with one line naming the setting when a key file does not exist", async () => {
    const result = await exitOnly({ TIDINGS_TICKET_KEY_FILE: "/nonexistent/ticket-key.bin" })
    expect(result.code).toBe(78)
    expectOneLine(result.stderr, "TIDINGS_TICKET_KEY_FILE ")
    expect(result.stderr).not.toContain("/nonexistent")
  })

  it("exits 78 with one line when the audit key is shorter than 32 bytes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tidings-short-key-"))
    writeFileSync(join(dir, "audit.key"), "too short")
    const result = await exitOnly({ TIDINGS_AUDIT_KEY_FILE: join(dir, "audit.key") })
    expect(result.code).toBe(78)
    expectOneLine(result.stderr, "TIDINGS_AUDIT_KEY_FILE ")
  })

  it("exits 78 with one line when a data key is shorter than 32 bytes, before reaching Redis", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tidings-short-key-"))
    writeFileSync(join(dir, "data.key"), "too short")
    const result = await exitOnly({ TIDINGS_REDIS_URL: "redis://127.0.0.1:1", TIDINGS_DATA_KEY_FILE: join(dir, "data.key") })
    expect(result.code).toBe(78)
    expectOneLine(result.stderr, "TIDINGS_DATA_KEY_FILE ")
    writeFileSync(join(dir, "good.key"), Buffer.alloc(32, 7))
    writeFileSync(join(dir, "old.key"), "short too")
    const previous = await exitOnly({
      TIDINGS_REDIS_URL: "redis://127.0.0.1:1", TIDINGS_DATA_KEY_FILE: join(dir, "good.key"), TIDINGS_DATA_PREVIOUS_KEY_FILES: join(dir, "old.key")
    })
    expect(previous.code).toBe(78)
    expectOneLine(previous.stderr, "TIDINGS_DATA_PREVIOUS_KEY_FILES ")
  })

  it("refuses a second start in the same directory with 75, touching neither certificate nor audit trail", async () => {
    const port = await freePort()
    const env = { TIDINGS_LISTEN: `127.0.0.1:${port}`, TIDINGS_METRICS_LISTEN: `127.0.0.1:${await freePort()}`, TIDINGS_AUDIT_SINK: "file:audit" }
    const first = run(env)
    await listening(first)
    const cert = join(first.dir, ".data", "dev-cert.pem")
    // The writer's first batch (audit.opened) lands just after "listening": wait for it.
    // (The file exists before its first append lands: wait for a whole record in it.)
    const written = () =>
      readdirSync(join(first.dir, "audit")).some((name) =>
        name.endsWith(".jsonl") && readFileSync(join(first.dir, "audit", name), "utf8").includes("\"audit.opened\"")
      )
    await until(async () => written(), 5_000, "first audit record")
    const before = { cert: digest(cert), audit: auditState(first.dir) }

    // The same directory, another port: only the lock can stop it.
    const second = await exec(process.execPath, [MAIN], first.dir, { ...env, TIDINGS_LISTEN: `127.0.0.1:${await freePort()}` })
    expect(second.code).toBe(75)
    expectOneLine(second.stderr, "the data directory .data ")
    expect({ cert: digest(cert), audit: auditState(first.dir) }).toEqual(before)
    // The first node still serves with the certificate clients were given.
    expect((await https(port, readFileSync(cert, "utf8"), "GET", "/healthz")).status).toBe(200)
  })

  it("takes over the lock a killed node left behind", async () => {
    const env = { TIDINGS_LISTEN: `127.0.0.1:${await freePort()}`, TIDINGS_METRICS_LISTEN: `127.0.0.1:${await freePort()}` }
    const first = run(env)
    await listening(first)
    first.child.kill("SIGKILL")
    await bounded(first.exited, EXIT_TIMEOUT_MS, "exit")
    const restarted = run(env, first.dir)
    await listening(restarted)
    restarted.child.kill("SIGTERM")
    expect((await bounded(restarted.exited, EXIT_TIMEOUT_MS, "exit")).code).toBe(0)
  })

  it("exits 75 with one line when TIDINGS_LISTEN's port is taken by another process", async () => {
    const port = await freePort()
    const first = run({ TIDINGS_LISTEN: `127.0.0.1:${port}`, TIDINGS_METRICS_LISTEN: `127.0.0.1:${await freePort()}` })
    await listening(first)
    const result = await exitOnly({ TIDINGS_LISTEN: `127.0.0.1:${port}`, TIDINGS_METRICS_LISTEN: `127.0.0.1:${await freePort()}` })
    expect(result.code).toBe(75)
    expectOneLine(result.stderr, "TIDINGS_LISTEN ")
  })

  it("exits 78 with one line on a Node older than 22.19, before any TypeScript is loaded", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tidings-old-node-"))
    // Node 20 cannot load the sources at all; a preload makes this Node report 20's version.
    const pretend = join(dir, "pretend-node-20.mjs")
    writeFileSync(pretend, `Object.defineProperty(process, "version", { value: "v20.19.0" })
Object.defineProperty(process, "versions", { value: { ...process.versions, node: "20.19.0" } })
`)
    const result = await exec(process.execPath, ["--import", pretend, "--import", join(ROOT, "bin/require-node.mjs"), MAIN], dir)
    expect(result.code).toBe(78)
    expect(result.stderr).toBe("tidings: Node >= 22.19 is required (this is v20.19.0)\n")
    expect(readdirSync(dir)).toEqual(["pretend-node-20.mjs"])
    // npm start, npm run demo, npm test and the tidings bin all go through the same check.
    const scripts = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts
    for (const name of ["start", "demo", "test", "audit"]) expect(scripts[name]).toContain("bin/require-node.mjs")
    expect(readFileSync(join(ROOT, "bin/tidings.mjs"), "utf8")).toMatch(/^import "\.\/require-node\.mjs"$/m)
  })
})

describe("npm run demo", () => {
  it("says to start the node first, in one line with exit 69, when no node has written its certificate", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tidings-demo-"))
    const result = await exec(process.execPath, [join(ROOT, "scripts/demo.ts")], dir)
    expect(result.code).toBe(69)
    expect(result.stderr).toBe("demo: no certificate at .data/dev-cert.pem: is `npm start` running in this directory?\n")
  })
})
