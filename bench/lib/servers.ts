// Starting and stopping what the bench measures: a redis-server of its own, Tidings nodes in
// production configuration (`node src/main.ts`, nothing bypassed), floor nodes. Each server
// runs with the same probe preloaded (bench/lib/probe.ts) and --expose-gc, so memory is read
// after a full collection in both. Every child is registered for the cleanup on exit.
import { type ChildProcess, fork, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { freePort } from "./net.ts"

const ROOT = fileURLToPath(new URL("../..", import.meta.url))
export const PROBE = fileURLToPath(new URL("./probe.ts", import.meta.url))
export const TIDINGS_MAIN = join(ROOT, "src/main.ts")
export const FLOOR_MAIN = fileURLToPath(new URL("../floor/server.ts", import.meta.url))

/** Everything started, stopped in reverse on exit (normal, error or Ctrl-C). */
export const cleanups: Array<() => Promise<void>> = []

export const stopChild = (child: ChildProcess, graceMs = 3_000): Promise<void> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs)
    child.once("exit", () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill("SIGTERM")
  })

export interface RedisServer {
  readonly url: string
  readonly pid: number
  readonly stop: () => Promise<void>
}

export const startRedis = async (): Promise<RedisServer> => {
  const port = await freePort()
  const child = spawn("redis-server", [
    "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--maxclients", "20000"
  ], { stdio: ["ignore", "pipe", "pipe"] })
  await new Promise<void>((resolve, reject) => {
    let output = ""
    const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${output}`)), 10_000)
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes("Ready to accept connections")) {
        clearTimeout(timer)
        child.stdout!.resume()
        resolve()
      }
    })
    child.once("exit", (code) => reject(new Error(`redis-server exited with ${code}: ${output}`)))
  })
  const stop = () => stopChild(child)
  cleanups.push(stop)
  return { url: `redis://127.0.0.1:${port}`, pid: child.pid!, stop }
}

export interface Server {
  readonly kind: "tidings" | "floor"
  readonly name: string
  readonly pid: number
  readonly port: number
  readonly child: ChildProcess
  /** The probe's answer: event-loop delay since the last reset (ms) and memory. */
  readonly probe: (options?: ProbeOptions) => Promise<ProbeAnswer>
  readonly stop: () => Promise<void>
  readonly output: () => string
}

export interface ProbeOptions {
  readonly gc?: boolean
  readonly reset?: boolean
  /** Also write a V8 heap snapshot to this path (after the GC). */
  readonly snapshot?: string
}

export interface ProbeAnswer {
  readonly eld: { readonly count: number; readonly p50: number; readonly p99: number; readonly max: number; readonly mean: number }
  readonly memory: { readonly rss: number; readonly heapUsed: number; readonly heapTotal: number; readonly external: number; readonly arrayBuffers: number }
  readonly spaces: Readonly<Record<string, { readonly size: number; readonly used: number }>>
}

let probes = 0

/**
 * The V8 flags `npm start` gives Tidings (package.json), so the bench runs it the same way. Its
 * `--import` preload (the Node version check) and that preload's path are not V8 flags: left out.
 */
const START_FLAGS: ReadonlyArray<string> = (
  JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts.start as string
).split(/\s+/).filter((word, i, words) => word.startsWith("--") && word !== "--import" && words[i - 1] !== "--import")

const launch = async (
  kind: "tidings" | "floor",
  name: string,
  script: string,
  env: NodeJS.ProcessEnv,
  port: number,
  options: { readonly cwd: string; readonly cpuProfileDir?: string | undefined }
): Promise<Server> => {
  const child = fork(script, [], {
    cwd: options.cwd,
    execArgv: [
      ...(kind === "tidings" ? START_FLAGS : []),
      "--expose-gc",
      "--import", PROBE,
      ...(options.cpuProfileDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfileDir}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`])
    ],
    env: { PATH: process.env.PATH ?? "", HOME: options.cwd, ...env },
    stdio: ["ignore", "pipe", "pipe", "ipc"]
  })
  let output = ""
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-8_000)
  }
  child.stdout!.on("data", keep)
  child.stderr!.on("data", keep)
  const stop = () => stopChild(child, 5_000)
  cleanups.push(stop)
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not announce "listening" within 30 s: ${output}`)), 30_000)
    const check = () => {
      if (output.includes('"listening"')) {
        clearTimeout(timer)
        child.stdout!.off("data", check)
        resolve()
      }
    }
    child.stdout!.on("data", check)
    child.once("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`${name} exited with ${code} before listening: ${output}`))
    })
  })
  const probe = (o: ProbeOptions = {}) =>
    new Promise<ProbeAnswer>((resolve, reject) => {
      const id = ++probes
      const timer = setTimeout(() => reject(new Error(`${name}: probe did not answer`)), o.snapshot === undefined ? 30_000 : 300_000)
      const listener = (message: { benchProbe?: number } & ProbeAnswer) => {
        if (message?.benchProbe !== id) return
        clearTimeout(timer)
        child.off("message", listener)
        resolve(message)
      }
      child.on("message", listener)
      child.send({ benchProbe: id, ...o })
    })
  return { kind, name, pid: child.pid!, port, child, probe, stop, output: () => output }
}

export interface Material {
  readonly dir: string
  readonly certFile: string
  readonly keyFile: string
  readonly ticketKeyFile: string
  readonly auditKeyFile: string
  readonly dataKeyFile: string
  /** TLS session ticket keys (both servers, every start): TIDINGS_TLS_RESUMPTION_KEY_FILE. */
  readonly resumptionKeyFile: string
  readonly jwksFile: string
  readonly issuer: string
  readonly audience: string
  readonly origin: string
}

/**
 * The settings raised above their defaults so one machine can act as thousands of users. The
 * per-address limits stay under 200/s, where the Redis rate limiter starts leasing tokens: high
 * enough never to refuse the bench's 200 source addresses, and taken one exact script per
 * request, as the defaults are, so S1 and S3 pay what a session pays in production.
 */
export const RAISED_LIMITS: Readonly<Record<string, string>> = {
  TIDINGS_RATE_CONNECTS_PER_IP_PER_MIN: "11000",
  TIDINGS_RATE_TICKETS_PER_IP_PER_MIN: "11000",
  TIDINGS_RATE_PUBLISHES_PER_S: "10000000"
}

export const startTidings = async (
  name: string,
  material: Material,
  redisUrl: string,
  options: { readonly extraEnv?: Record<string, string>; readonly cpuProfileDir?: string | undefined; readonly port?: number } = {}
): Promise<Server> => {
  // A given port: a node restarted where its clients reconnect to (S6).
  const port = options.port ?? await freePort()
  const env = {
    TIDINGS_MODE: "production",
    TIDINGS_NODE_ID: name,
    TIDINGS_LISTEN: `127.0.0.1:${port}`,
    TIDINGS_TLS_CERT_FILE: material.certFile,
    TIDINGS_TLS_KEY_FILE: material.keyFile,
    TIDINGS_ALLOWED_ORIGINS: material.origin,
    TIDINGS_REDIS_URL: redisUrl,
    TIDINGS_AUTH_ISSUER: material.issuer,
    TIDINGS_AUTH_AUDIENCE: material.audience,
    TIDINGS_AUTH_JWKS_FILE: material.jwksFile,
    TIDINGS_TICKET_KEY_FILE: material.ticketKeyFile,
    TIDINGS_AUDIT_KEY_FILE: material.auditKeyFile,
    TIDINGS_DATA_KEY_FILE: material.dataKeyFile,
    TIDINGS_TLS_RESUMPTION_KEY_FILE: material.resumptionKeyFile,
    TIDINGS_AUDIT_SINK: `file:${join(material.dir, `audit-${name}`)}`,
    TIDINGS_METRICS_LISTEN: `127.0.0.1:${await freePort()}`,
    ...RAISED_LIMITS,
    ...options.extraEnv
  }
  return launch("tidings", name, TIDINGS_MAIN, env, port, { cwd: material.dir, cpuProfileDir: options.cpuProfileDir })
}

export const startFloor = async (
  name: string,
  material: Material,
  redisUrl: string,
  options: { readonly heartbeatS?: number; readonly cpuProfileDir?: string | undefined; readonly port?: number } = {}
): Promise<Server> => {
  const port = options.port ?? await freePort()
  const env = {
    FLOOR_LISTEN: `127.0.0.1:${port}`,
    FLOOR_TLS_CERT_FILE: material.certFile,
    FLOOR_TLS_KEY_FILE: material.keyFile,
    FLOOR_TLS_RESUMPTION_KEY_FILE: material.resumptionKeyFile,
    FLOOR_REDIS_URL: redisUrl,
    FLOOR_HEARTBEAT_S: String(options.heartbeatS ?? 25)
  }
  return launch("floor", name, FLOOR_MAIN, env, port, { cwd: material.dir, cpuProfileDir: options.cpuProfileDir })
}
