// docker-compose.yml and the Dockerfile cannot drift from the code: their topology runs here as
// local processes (these machines have no container runtime). The `keys` service's command
// fills a temporary directory; each node runs the Dockerfile's CMD with the compose file's
// environment, volume paths mapped to temporary directories and Redis on a free port; both
// must become ready, accept each other's tickets and carry an event across.
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { WebSocket } from "ws"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { parse } from "yaml"
import { freePort } from "../support/net.ts"
import { bounded, https, listening, type Node, run } from "../support/process.ts"
import { hasRedisServer, skipReason, startRedis, type TestRedis } from "../support/redis.ts"
import { until } from "../support/wait.ts"

const ROOT = resolve(import.meta.dirname, "../..")
// Compose reads `<<` merge keys (YAML 1.1), as tidings-b does from tidings-a.
const compose = parse(readFileSync(join(ROOT, "docker-compose.yml"), "utf8"), { merge: true })
const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8")

/** The Dockerfile's CMD, as an argv. */
const cmd = (): Array<string> => JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]!)
/** Its WORKDIR, which CMD's relative paths are read from: the repository root here. */
const workdir = /^WORKDIR (\S+)$/m.exec(dockerfile)![1]!

describe("the Dockerfile", () => {
  it("runs main.ts with the V8 flag every start must pass", () => {
    expect(cmd()).toEqual(["node", "--max-semi-space-size=16", "src/main.ts"])
    expect(JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts.start).toContain("--max-semi-space-size=16")
  })
})

describe.skipIf(!hasRedisServer)(`docker-compose.yml as local processes${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  let redis: TestRedis
  const dir = mkdtempSync(join(tmpdir(), "tidings-compose-"))
  // Started once for the whole file and stopped after it (not per test, as useProcesses would).
  const nodes: Array<{ readonly name: string; readonly port: number; readonly process: Node }> = []
  let ca = ""

  /** A compose path inside a volume (/keys/…, /audit) → the temporary directory standing in for it. */
  const mapPath = (value: string, volumes: ReadonlyArray<string>): string => {
    // `file:/audit` (the audit sink setting) holds a path after its scheme.
    if (value.startsWith("file:")) return `file:${mapPath(value.slice(5), volumes)}`
    for (const volume of volumes) {
      const [name, target] = volume.split(":") as [string, string]
      if (value === target || value.startsWith(`${target}/`)) return join(dir, name) + value.slice(target.length)
    }
    return value
  }

  beforeAll(async () => {
    redis = await startRedis()
    // The keys service, exactly as compose runs it, into the directory standing in for its volume.
    const keys = compose.services.keys
    const [command, ...args] = keys.command as Array<string>
    expect(command).toBe("node")
    const made = spawnSync(process.execPath, args.map((a: string) => mapPath(a, keys.volumes)), { cwd: ROOT, encoding: "utf8" })
    expect(made.status, made.stderr).toBe(0)

    for (const name of ["tidings-a", "tidings-b"]) {
      const service = compose.services[name]
      const port = await freePort()
      const env: Record<string, string> = {}
      for (const [key, value] of Object.entries(service.environment as Record<string, string>)) {
        env[key] = mapPath(String(value), service.volumes)
      }
      // What a container network provides: Redis by its service name, and the published port.
      expect(env.TIDINGS_REDIS_URL).toBe("redis://redis:6379")
      env.TIDINGS_REDIS_URL = redis.url
      expect(env.TIDINGS_LISTEN).toBe("0.0.0.0:8443")
      env.TIDINGS_LISTEN = `127.0.0.1:${port}`
      // Containers each have their own loopback; local processes share one.
      env.TIDINGS_METRICS_LISTEN = `127.0.0.1:${await freePort()}`
      const [node, ...argv] = cmd()
      expect(node).toBe("node")
      expect(workdir).toBe("/app")
      // Every path the node is given lies in a stand-in volume, never at the compose path itself.
      for (const value of Object.values(env)) expect(value.startsWith("/") && !value.startsWith(dir)).toBe(false)
      const child = run(env, undefined, argv.map((a) => (a.startsWith("-") ? a : join(ROOT, a))))
      nodes.push({ name, port, process: child })
      await listening(child)
    }
    ca = readFileSync(join(dir, "keys", "tls-cert.pem"), "utf8")
  }, 60_000)
  afterAll(async () => {
    for (const node of nodes) {
      node.process.child.kill("SIGTERM")
      await bounded(node.process.exited, 10_000, `${node.name} exit`)
    }
    await redis?.stop()
  })

  it("starts both nodes, and each becomes ready", async () => {
    for (const node of nodes) {
      await until(async () => (await https(node.port, ca, "GET", "/readyz")).status === 200, 10_000, `${node.name} ready`)
    }
  })

  it("lets the dev app origins connect (React on :3000, Vite on :5173)", () => {
    const origins = String(compose.services["tidings-a"].environment.TIDINGS_ALLOWED_ORIGINS).split(",")
    expect(origins).toEqual(expect.arrayContaining(["http://localhost:3000", "http://localhost:5173"]))
  })

  it("accepts on node B a ticket issued by node A, and delivers an event published through A", async () => {
    const [a, b] = nodes as [typeof nodes[0], typeof nodes[0]]
    const patient = "pt_compose_0001"
    const token = JSON.parse((await https(a.port, ca, "POST", "/dev/token", { role: "patient", ref: patient })).body).accessToken
    const issued = await https(a.port, ca, "POST", "/v1/tickets", undefined, token)
    expect(issued.status).toBe(201)
    const ws = new WebSocket(`wss://localhost:${b.port}/v1/ws`, ["tidings.v1", `ticket.${JSON.parse(issued.body).ticket}`], {
      ca,
      origin: "http://localhost:5173"
    })
    const frames: Array<any> = []
    const seen = (type: string) =>
      until(async () => frames.some((f) => f.type === type), 5_000, type)
    ws.on("message", (data) => frames.push(JSON.parse(data.toString())))
    ws.once("open", () => ws.send(JSON.stringify({ type: "subscribe", id: "s", channel: `patient:${patient}` })))
    await seen("subscribed")
    const service = JSON.parse((await https(a.port, ca, "POST", "/dev/token", { role: "service", ref: "svc_compose_001" })).body).accessToken
    const published = await https(a.port, ca, "POST", "/v1/events", { channel: `patient:${patient}`, kind: "result.available", ref: "res_compose_01" }, service)
    expect(published.status).toBe(202)
    await seen("event")
    expect(frames.find((f) => f.type === "event")).toMatchObject({ channel: `patient:${patient}`, ref: "res_compose_01", seq: 1 })
    ws.close()
  })
})
