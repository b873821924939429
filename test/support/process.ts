// Runs the real entry point (`node src/main.ts`) as a child process for end-to-end tests: a
// fresh temp directory as its cwd, its output kept, its "listening" line awaited, and HTTPS to
// it with the certificate it wrote. `useProcesses()` cleans up after each test.
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { request } from "node:https"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { afterAll, afterEach, expect } from "vitest"
import { withDataKey } from "./data-key.ts"
import { freePort } from "./net.ts"

export const MAIN = resolve(import.meta.dirname, "../../src/main.ts")
export const START_TIMEOUT_MS = 20_000
export const EXIT_TIMEOUT_MS = 10_000
export const DEV_ORIGIN = "http://localhost:5173"

export interface Node {
  readonly child: ChildProcess
  readonly dir: string
  readonly stdout: () => string
  readonly stderr: () => string
  /** Resolves once the process has exited and its output is flushed. */
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

const children = new Set<ChildProcess>()
const dirs: Array<string> = []

/** Kills what a test left running and removes its directories (call once per test file). */
export const useProcesses = () => {
  afterEach(() => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    }
    children.clear()
  })
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  })
}

/** Runs main.ts in a fresh temp dir (or `inDir`) as its cwd, with only the given TIDINGS_* settings. */
export const run = (
  settings: Record<string, string> | ((dir: string) => Record<string, string>),
  inDir?: string,
  /** The command line after `node`, when not just main.ts (e.g. a Dockerfile's CMD). */
  argv: ReadonlyArray<string> = [MAIN]
): Node => {
  const dir = inDir ?? mkdtempSync(join(tmpdir(), "tidings-proc-"))
  if (inDir === undefined) dirs.push(dir)
  const env = typeof settings === "function" ? settings(dir) : settings
  const child = spawn(process.execPath, [...argv], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "", HOME: dir, ...withDataKey(env) },
    stdio: ["ignore", "pipe", "pipe"]
  })
  children.add(child)
  let stdout = ""
  let stderr = ""
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("close", (code, signal) => resolve({ code, signal }))
  )
  return { child, dir, stdout: () => stdout, stderr: () => stderr, exited }
}

export const bounded = <A>(promise: Promise<A>, ms: number, what: string): Promise<A> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)
    promise.then((value) => (clearTimeout(timer), resolve(value)), (error) => (clearTimeout(timer), reject(error)))
  })

export const jsonLines = (text: string): Array<Record<string, any>> =>
  text.split("\n").filter((line) => line.trim().length > 0).map((line) => JSON.parse(line))

/** Waits for the process's JSON "listening" line (or its early exit). */
export const listening = async (node: Node): Promise<Record<string, any>> => {
  const deadline = Date.now() + START_TIMEOUT_MS
  let early: { code: number | null } | undefined
  void node.exited.then((exit) => (early = exit))
  while (Date.now() < deadline) {
    const line = node.stdout().split("\n").find((l) => l.includes("\"listening\""))
    if (line !== undefined) return JSON.parse(line)
    if (early !== undefined) throw new Error(`exited ${early.code} before listening: ${node.stderr()}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`no "listening" line within ${START_TIMEOUT_MS} ms; stdout: ${node.stdout()} stderr: ${node.stderr()}`)
}

export const startDev = async () => {
  const port = await freePort()
  const node = run((dir) => ({ TIDINGS_LISTEN: `127.0.0.1:${port}`, TIDINGS_AUDIT_SINK: `file:${join(dir, "audit")}` }))
  const announced = await listening(node)
  const ca = readFileSync(join(node.dir, ".data", "dev-cert.pem"), "utf8")
  return { node, port, announced, ca }
}

/** One HTTPS request to a node on loopback; `timeoutMs` fails it when no answer comes in time. */
export const https = (
  port: number,
  ca: string,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
  timeoutMs?: number
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> =>
  new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body)
    const req = request({
      host: "localhost", port, method, path, ca, agent: false,
      ...(timeoutMs === undefined ? {} : { timeout: timeoutMs }),
      headers: {
        ...(text === undefined ? {} : { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)) }),
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` })
      }
    }, (res) => {
      let data = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (data += chunk))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data }))
    })
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)))
    req.on("error", reject)
    req.end(text)
  })

export const exitOnly = async (env: Record<string, string>) => {
  const node = run(env)
  const exit = await bounded(node.exited, EXIT_TIMEOUT_MS, "exit")
  return { ...exit, stdout: node.stdout(), stderr: node.stderr(), dir: node.dir }
}


/** A refused start's stderr: exactly one line, starting `tidings: <start>`, and no stack trace. */
export const expectOneLine = (stderr: string, start: string) => {
  const lines = stderr.split("\n").filter((line) => line.length > 0)
  expect(lines, stderr).toHaveLength(1)
  expect(lines[0]!.startsWith(`tidings: ${start}`), stderr).toBe(true)
  expect(stderr).not.toMatch(/^\s+at /m)
  expect(stderr).not.toMatch(/Error/)
}

/** A dev node on `port` that can be stopped and started again there, and a second node on the same Redis. */
export interface RestartablePair {
  readonly port: number
  /** The node's current certificate: a restarted dev node writes a new one. */
  readonly ca: () => string
  /** Publishes event `n` on `channel` through the second node; its HTTP status. */
  readonly publishVia: (channel: string, n: number) => Promise<number>
  /** SIGTERM (every socket closes 1001), and waits for the exit. */
  readonly stop: () => Promise<void>
  /** Starts it again on the same port and directory. */
  readonly start: () => Promise<void>
  /** Stops both nodes (SIGTERM) and waits for their exits. */
  readonly close: () => Promise<void>
}

export const restartablePair = async (
  redisUrl: string,
  service: string,
  env: Record<string, string> = {}
): Promise<RestartablePair> => {
  const settings = async (listen: number) => {
    const metrics = await freePort()
    return (dir: string) => ({
      TIDINGS_LISTEN: `127.0.0.1:${listen}`, TIDINGS_REDIS_URL: redisUrl, TIDINGS_AUDIT_SINK: `file:${join(dir, "audit")}`,
      TIDINGS_METRICS_LISTEN: `127.0.0.1:${metrics}`, ...env
    })
  }
  const port = await freePort()
  let node = run(await settings(port))
  await listening(node)
  const other = run(await settings(await freePort()))
  const otherPort = Number((await listening(other)).annotations.port)
  const otherCa = readFileSync(join(other.dir, ".data", "dev-cert.pem"), "utf8")
  const token = JSON.parse((await https(otherPort, otherCa, "POST", "/dev/token", { role: "service", ref: service })).body).accessToken
  return {
    port,
    ca: () => readFileSync(join(node.dir, ".data", "dev-cert.pem"), "utf8"),
    publishVia: async (channel, n) =>
      (await https(otherPort, otherCa, "POST", "/v1/events", { channel, kind: "appointment.updated", ref: `apt_${String(n).padStart(8, "0")}` }, token)).status,
    stop: async () => {
      node.child.kill("SIGTERM")
      await bounded(node.exited, EXIT_TIMEOUT_MS, "exit")
    },
    start: async () => {
      node = run(await settings(port), node.dir)
      await listening(node)
    },
    close: async () => {
      for (const each of [node, other]) {
        if (each.child.exitCode === null && each.child.signalCode === null) each.child.kill("SIGTERM")
        await bounded(each.exited, EXIT_TIMEOUT_MS, "exit")
      }
    }
  }
}
