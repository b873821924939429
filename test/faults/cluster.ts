// The system under test for the fault-injection suite: one append-only redis-server on a free
// loopback port and two gateway nodes (`node src/main.ts`, ids a and b) sharing the keys made
// by scripts/make-keys.ts, each with its own file audit sink; each can be stopped, killed, restarted.
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { Redis as IORedis } from "ioredis"
import { freePort } from "../support/net.ts"
import { https } from "../support/process.ts"
import { exited, spawnRedis, urlAs, usersArgs } from "../support/redis.ts"
import { until } from "../support/wait.ts"
import { ANSWER_MS, START_MS } from "./bounds.ts"

const ROOT = resolve(import.meta.dirname, "../..")
const MAIN = join(ROOT, "src/main.ts")
export const ORIGIN = "http://localhost:5173"
export type NodeName = "a" | "b"
export const NODES: ReadonlyArray<NodeName> = ["a", "b"]

export interface Reply {
  readonly status: number
  readonly body: any
}

export interface GatewayNode {
  readonly name: NodeName
  readonly port: number
  readonly auditDir: string
  readonly https: (method: string, path: string, body?: unknown, token?: string) => Promise<Reply>
  /** SIGTERM (clean stop) or SIGKILL (crash), then waits for the exit. */
  readonly stop: (signal: "SIGTERM" | "SIGKILL") => Promise<void>
  /** Starts the process again on the same port and directories; resolves once it is ready. */
  readonly start: () => Promise<void>
  readonly running: () => boolean
  readonly output: () => string
}

export interface Cluster {
  readonly ca: string
  readonly auditKeyFile: string
  readonly redisPort: number
  readonly admin: IORedis
  readonly node: Record<NodeName, GatewayNode>
  readonly redisStop: (signal: "SIGTERM" | "SIGKILL") => Promise<void>
  readonly redisStart: () => Promise<void>
  readonly redisRunning: () => boolean
  readonly close: () => Promise<void>
}

const httpsTo = (port: number, ca: string) => (method: string, path: string, body?: unknown, token?: string): Promise<Reply> =>
  https(port, ca, method, path, body, token, ANSWER_MS).then((reply) => ({
    status: reply.status,
    body: reply.body.length > 0 ? JSON.parse(reply.body) : undefined
  }))

/** Whether an HTTPS request can be made and answered at all (the node may be down). */
const status = (call: Promise<Reply>) => call.then((reply) => reply.status, () => 0)

const gatewayNode = async (name: NodeName, keys: string, base: string, redisUrl: string, ca: string): Promise<GatewayNode> => {
  const port = await freePort()
  const metricsPort = await freePort()
  const dir = join(base, `node-${name}`)
  const auditDir = join(dir, "audit")
  mkdirSync(dir, { recursive: true })
  const env = {
    PATH: process.env.PATH ?? "",
    HOME: dir,
    TIDINGS_NODE_ID: name,
    TIDINGS_LISTEN: `127.0.0.1:${port}`,
    TIDINGS_METRICS_LISTEN: `127.0.0.1:${metricsPort}`,
    TIDINGS_REDIS_URL: redisUrl,
    TIDINGS_AUDIT_SINK: `file:${auditDir}`,
    TIDINGS_TLS_CERT_FILE: join(keys, "tls-cert.pem"),
    TIDINGS_TLS_KEY_FILE: join(keys, "tls-key.pem"),
    TIDINGS_TICKET_KEY_FILE: join(keys, "ticket-key.bin"),
    TIDINGS_AUDIT_KEY_FILE: join(keys, "audit-key.bin"),
    TIDINGS_DATA_KEY_FILE: join(keys, "data-key.bin"),
    TIDINGS_DEV_ISSUER_KEY_FILE: join(keys, "dev-issuer-key.pem"),
    TIDINGS_ALLOWED_ORIGINS: ORIGIN,
    TIDINGS_LOG_LEVEL: "info",
    // Random sequences open many sessions for few subjects from one address: limits are not under test.
    TIDINGS_MAX_SESSIONS_PER_SUBJECT: "100",
    TIDINGS_RATE_CONNECTS_PER_MIN: "100000",
    TIDINGS_RATE_TICKETS_PER_MIN: "100000",
    TIDINGS_RATE_CONNECTS_PER_IP_PER_MIN: "1000000",
    TIDINGS_RATE_TICKETS_PER_IP_PER_MIN: "1000000",
    TIDINGS_RATE_SUBSCRIBES_PER_MIN: "100000"
  }
  let child: ChildProcess | undefined
  let output = ""
  const https = httpsTo(port, ca)
  const running = () => child !== undefined && child.exitCode === null && child.signalCode === null
  const start = async () => {
    output = ""
    const spawned = spawn(process.execPath, [MAIN], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] })
    child = spawned
    spawned.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
    spawned.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
    await until(async () => {
      if (!running()) throw new Error(`node ${name} exited before listening: ${output.slice(-2000)}`)
      return output.includes("\"listening\"")
    }, START_MS, `node ${name} logs "listening"`)
    await until(async () => (await status(https("GET", "/readyz"))) === 200, START_MS, `node ${name} is ready`)
  }
  const stop = async (signal: "SIGTERM" | "SIGKILL") => {
    const current = child
    if (current === undefined || !running()) return
    const closed = new Promise<void>((resolve) => current.once("close", () => resolve()))
    current.kill(signal)
    let done = false
    void closed.then(() => (done = true))
    await until(async () => done, START_MS, `node ${name} exits on ${signal}`)
  }
  await start()
  return { name, port, auditDir, https, stop, start, running, output: () => output }
}

export const startCluster = async (): Promise<Cluster> => {
  const base = mkdtempSync(join(tmpdir(), "tidings-faults-"))
  const keys = join(base, "keys")
  execFileSync(process.execPath, [join(ROOT, "scripts/make-keys.ts"), keys], { stdio: "ignore" })
  const ca = readFileSync(join(keys, "tls-cert.pem"), "utf8")
  const redisPort = await freePort()
  const redisDir = join(base, "redis")
  mkdirSync(redisDir, { recursive: true })
  // Persistent like production (append-only, fsync each write): a restart keeps seq and history.
  // A Redis that loses its state on restart (no persistence) is issue 14, not this suite's.
  const launchRedis = () =>
    spawnRedis(["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
      "--appendfsync", "always", "--dir", redisDir, ...usersArgs()])
  let redis: ChildProcess = await launchRedis()
  // The nodes as the gateway's ACL user, the suite's own reads as admin.
  const redisUrl = urlAs("gateway", redisPort)
  const admin = new IORedis(urlAs("admin", redisPort), { lazyConnect: true, maxRetriesPerRequest: 3 })
  await admin.connect()
  const node = {
    a: await gatewayNode("a", keys, base, redisUrl, ca),
    b: await gatewayNode("b", keys, base, redisUrl, ca)
  }
  return {
    ca,
    auditKeyFile: join(keys, "audit-key.bin"),
    redisPort,
    admin,
    node,
    redisStop: (signal) => exited(redis, signal),
    redisStart: async () => {
      redis = await launchRedis()
    },
    redisRunning: () => redis.exitCode === null && redis.signalCode === null,
    close: async () => {
      for (const name of NODES) await node[name].stop("SIGTERM")
      admin.disconnect()
      await exited(redis, "SIGTERM")
      rmSync(base, { recursive: true, force: true })
    }
  }
}
