// The benchmark of issue 6: Tidings against a floor server, back to back, under the same load
// from the same generator (separate processes), every figure a ratio against the floor measured
// in the same run. `npm run bench` runs S1–S4; `npm run bench -- --scale` runs S5;
// `npm run bench -- --only S6` runs the reconnect storm (bench/scenarios/s6.ts).
//   node bench/run.ts [--only S1,S3] [--quick] [--step-s 10] [--rates 1000,5000,20000]
//                     [--only S2R] [--connections N] [--scale] [--profile] [--heap-snapshots] [--modes http,bus]
//                     [--churn-s 6] [--churn-rounds 4] [--reference-rounds 3] [--reference-step-s 8] [--no-docs] [--report]
//                     [--batch 50] (S2's POST /v1/events/batch steps, Tidings only; 0 leaves them out)
//                     [--s6-sessions 10000] [--s6-workers 2] (S6)
import { execFileSync } from "node:child_process"
import { generateKeyPairSync, randomBytes } from "node:crypto"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { freemem, totalmem, tmpdir, cpus } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Redis } from "ioredis"
import { makeSelfSigned } from "../src/server/SelfSigned.ts"
import { BENCH_DATA_KEY } from "./lib/bus.ts"
import { sleep } from "./lib/clock.ts"
import { Histogram, type HistogramJson, summaryMs, type SummaryMs } from "./lib/hist.ts"
import { AUDIENCE, ISSUER, jwksOf, makeIssuerKey, makeSigner } from "./lib/jwt.ts"
import { cpuUs, cpuUsOf, machineCpuUs, rssBytes } from "./lib/proc.ts"
import { Worker } from "./lib/rpc.ts"
import * as Report from "./lib/report.ts"
import {
  cleanups, type Material, RAISED_LIMITS, type Server, startFloor, startRedis, startTidings
} from "./lib/servers.ts"
import type { OpenArgs, Target } from "./load/clients.ts"
import { S6_ENV, s6 } from "./scenarios/s6.ts"

// --- options -----------------------------------------------------------------------------------

const argv = process.argv.slice(2)
const flag = (name: string) => argv.includes(name)
const option = (name: string): string | undefined => {
  const i = argv.indexOf(name)
  return i >= 0 ? argv[i + 1] : undefined
}
const quick = flag("--quick")
const scale = flag("--scale")
const only = new Set((option("--only") ?? (scale ? "S5" : "S1,S2,S3,S4")).toUpperCase().split(","))
const stepS = Number(option("--step-s") ?? (quick ? 3 : 10))
const rates = (option("--rates") ?? "1000,5000,20000").split(",").map(Number)
const s1Connections = Number(option("--connections") ?? (quick ? 1000 : 10_000))
const fanout = { connections: quick ? 500 : 2_000, channels: quick ? 50 : 200 }
const churnS = Number(option("--churn-s") ?? (quick ? 3 : 6))
const churnRounds = Number(option("--churn-rounds") ?? (quick ? 1 : 4))
const referenceRounds = Number(option("--reference-rounds") ?? (quick ? 1 : 3))
const referenceStepS = Number(option("--reference-step-s") ?? Math.min(stepS, 8))
const profileDir = flag("--profile") ? join(fileURLToPath(new URL(".", import.meta.url)), "results", "profiles") : undefined
const writeDocs = !flag("--no-docs")
const modes = (option("--modes") ?? "http,bus").split(",") as Array<"http" | "bus">
/** Events per request in S2's batch steps (the floor has no batch route: Tidings only). */
const batchSize = Number(option("--batch") ?? 50)
const heapSnapshots = flag("--heap-snapshots")
/** S6: sessions on the restarted node, and the client processes they are spread over. */
const s6Sessions = Number(option("--s6-sessions") ?? (quick ? 1_000 : 10_000))
const s6Workers = Number(option("--s6-workers") ?? Math.max(1, Math.ceil(s6Sessions / 5_000)))

const ROOT = fileURLToPath(new URL("..", import.meta.url))
const RESULTS = join(ROOT, "bench", "results")
const ORIGIN = "https://bench.example"
const SPREAD = 200

// --- progress ----------------------------------------------------------------------------------

const began = Date.now()
const clock = () => {
  const s = Math.floor((Date.now() - began) / 1000)
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`
}
const say = (text: string) => process.stderr.write(`[${clock()}] ${text}\n`)
let lastNote = 0
const onNote = (who: string) => (note: any) => {
  if (Date.now() - lastNote < 2_000) return
  lastNote = Date.now()
  if (note.kind === "open") say(`  ${who}: ${note.opened}/${note.count} sessions open, ${note.failed} failed`)
  else if (note.kind === "churn") say(`  ${who}: ${note.completed} sessions completed, ${note.failed} failed`)
  else if (note.kind === "publish") say(`  ${who}: ${note.tag} sent ${note.sent}, accepted ${note.accepted}, dropped ${note.dropped}`)
}

// --- cleanup on every way out ------------------------------------------------------------------

let tmp = ""
let cleaning: Promise<void> | undefined
const cleanup = () => {
  cleaning ??= (async () => {
    for (const stop of cleanups.splice(0).reverse()) await stop().catch(() => undefined)
    if (tmp !== "") rmSync(tmp, { recursive: true, force: true })
  })()
  return cleaning
}
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    say(`${signal}: stopping everything the bench started`)
    void cleanup().then(() => process.exit(130))
  })
}

// --- the run -----------------------------------------------------------------------------------

const main = async () => {
  if (flag("--report")) {
    // Only re-render docs/ from the newest results already in bench/results/.
    say(`rewrote ${Report.writeDocs(ROOT, RESULTS).join(", ")}`)
    return
  }
  tmp = mkdtempSync(join(tmpdir(), "tidings-bench-"))
  const material = makeMaterial(tmp)
  const issuer = makeIssuerKey()
  writeFileSync(material.jwksFile, JSON.stringify(jwksOf(issuer)))
  const serviceToken = makeSigner(issuer)({ role: "service", ref: "bench_publisher", scope: "events:publish relationships:write" }, 86_400)

  say(`starting redis-server`)
  const redis = await startRedis()
  const admin = new Redis(redis.url)
  cleanups.push(async () => void admin.disconnect())

  const fdLimit = Number(execFileSync("sh", ["-c", "ulimit -Hn"]).toString().trim()) || 20_000
  const s5Wanted = Number(option("--connections") ?? 100_000)
  const s5Connections = Math.min(s5Wanted, fdLimit - 1_000)
  const clientWorkers = scale ? Math.max(1, Math.ceil(s5Connections / 15_000)) : 1

  const clients = Array.from({ length: clientWorkers }, (_, i) => {
    const worker = new Worker(`clients-${i}`, join(ROOT, "bench/load/clients.ts"), { execArgv: ["--max-old-space-size=8192"] })
    worker.onNote = onNote(worker.name)
    cleanups.push(() => worker.stop())
    return worker
  })
  const publisher = new Worker("publisher", join(ROOT, "bench/load/publisher.ts"))
  publisher.onNote = onNote("publisher")
  cleanups.push(() => publisher.stop())
  await Promise.all(clients.map((c, i) => c.call("setup", { issuer, redisUrl: redis.url, spread: SPREAD, worker: i })))
  await publisher.call("setup", { redisUrl: redis.url })

  const ctx: Ctx = {
    material, redis: { url: redis.url, admin }, clients, publisher, serviceToken, runTag: randomBytes(3).toString("hex"),
    loadPids: [...clients, publisher].map((w) => w.child.pid!), redisPid: redis.pid
  }
  const results: Report.Results = {
    kind: scale ? "scale" : only.size === 4 && !quick && !flag("--only") ? "default"
      // S6 alone at its full size is the storm run the docs show; smaller ones are partial.
      : only.size === 1 && only.has("S6") && s6Sessions >= 10_000 ? "storm" : "partial",
    startedAt: new Date(began).toISOString(),
    finishedAt: "",
    wallSeconds: 0,
    env: environment(),
    settings: {
      stepS, rates, batchSize, s1Connections, fanout, churnS, churnRounds, referenceRounds, referenceStepS, churnConcurrency: 50, s4Rate: 5_000,
      raisedLimits: RAISED_LIMITS, heartbeatS: 25, profile: profileDir !== undefined, quick,
      ...(only.has("S6") ? { s6Sessions, s6Workers, s6Env: S6_ENV } : {})
    },
    s1: undefined, s2: undefined, s3: undefined, s4: undefined, s5: undefined, targets: []
  }
  if (scale && s5Connections < s5Wanted) say(`S5: ${s5Wanted} connections wanted, capped at ${s5Connections}: one process may hold only ${fdLimit} files (ulimit -Hn)`)

  if (only.has("S1")) results.s1 = { tidings: await s1(ctx, "tidings"), floor: await s1(ctx, "floor") }
  if (only.has("S2")) {
    results.s2 = { tidings: await s2(ctx, "tidings"), floor: await s2(ctx, "floor") }
    results.s2ref = await s2Reference(ctx)
    // The highest step held, with the 1k/s step judged by most of its alternating rounds.
    for (const kind of ["tidings", "floor"] as const) {
      const side = results.s2[kind]
      side.highestHeldSingleRun = side.highestHeld
      side.highestHeld = Object.fromEntries(modes.map((mode) =>
        [mode, highestHeld(side.steps, mode, results.s2ref![kind].byMode[mode]!.held)]
      ))
    }
  }
  // The S2 reference alone (no S2 steps, so no held-step verdicts): for checking the method.
  if (only.has("S2R") && !only.has("S2")) results.s2ref = await s2Reference(ctx)
  if (only.has("S3")) results.s3 = await s3(ctx)
  if (only.has("S4")) results.s4 = { tidings: await s4(ctx, "tidings"), floor: await s4(ctx, "floor") }
  if (only.has("S5")) {
    results.s5 = { wanted: s5Wanted, connections: s5Connections, tidings: await s5(ctx, "tidings", s5Connections), floor: await s5(ctx, "floor", s5Connections) }
  }
  if (only.has("S6")) {
    const storm = { root: ROOT, material, redis: { ...ctx.redis, pid: ctx.redisPid }, issuer, runTag: ctx.runTag, spread: SPREAD, target: (s: Server) => target(s, material), say, cpuProfileDir: profileDir }
    results.s6 = { tidings: await s6(storm, "tidings", s6Sessions, s6Workers), floor: await s6(storm, "floor", s6Sessions, s6Workers) }
  }

  results.finishedAt = new Date().toISOString()
  results.wallSeconds = Math.round((Date.now() - began) / 1000)
  results.targets = Report.targets(results)
  mkdirSync(RESULTS, { recursive: true })
  const file = join(RESULTS, `${results.startedAt.replace(/[:.]/g, "-")}-${results.kind}.json`)
  writeFileSync(file, `${JSON.stringify(results, null, 1)}\n`)
  process.stdout.write(`\n${Report.table(results)}\n`)
  say(`results: ${file}`)
  if (writeDocs && results.kind !== "partial") {
    const written = Report.writeDocs(ROOT, RESULTS)
    say(`rewrote ${written.join(", ")}`)
  }
  say(`done in ${results.wallSeconds} s`)
}

// --- shared plumbing ---------------------------------------------------------------------------

interface Ctx {
  readonly material: Material
  readonly redis: { readonly url: string; readonly admin: Redis }
  readonly clients: ReadonlyArray<Worker>
  readonly publisher: Worker
  readonly serviceToken: string
  readonly runTag: string
  /** The load generators and Redis, whose CPU is reported beside the server's. */
  readonly loadPids: ReadonlyArray<number>
  readonly redisPid: number
}

type Kind = "tidings" | "floor"

const makeMaterial = (dir: string): Material => {
  // The public listener's certificate: EC P-256, like Tidings' own self-signed one.
  const tls = makeSelfSignedPem()
  const certFile = join(dir, "cert.pem")
  const keyFile = join(dir, "key.pem")
  writeFileSync(certFile, tls.cert)
  writeFileSync(keyFile, tls.key, { mode: 0o600 })
  const ticketKeyFile = join(dir, "ticket-key.bin")
  // An HS256 secret: the cheapest ticket key Tidings accepts, and the one README recommends
  // (tickets are made and checked by the gateway alone).
  writeFileSync(ticketKeyFile, randomBytes(32), { mode: 0o600 })
  const auditKeyFile = join(dir, "audit-key.bin")
  writeFileSync(auditKeyFile, randomBytes(32), { mode: 0o600 })
  const dataKeyFile = join(dir, "data-key.bin")
  writeFileSync(dataKeyFile, BENCH_DATA_KEY, { mode: 0o600 })
  // One TLS session resumption key for every start of either server, as a deployment sets it:
  // a restarted node (S6) resumes its clients' TLS sessions.
  const resumptionKeyFile = join(dir, "tls-resumption.bin")
  writeFileSync(resumptionKeyFile, randomBytes(32), { mode: 0o600 })
  return { dir, certFile, keyFile, ticketKeyFile, auditKeyFile, dataKeyFile, resumptionKeyFile, jwksFile: join(dir, "jwks.json"), issuer: ISSUER, audience: AUDIENCE, origin: ORIGIN }
}

const makeSelfSignedPem = () => makeSelfSigned({ hosts: ["localhost", "127.0.0.1"], days: 2 })

const environment = () => {
  const run = (cmd: string, args: ReadonlyArray<string>) => {
    try {
      return execFileSync(cmd, args, { cwd: ROOT, stdio: ["ignore", "pipe", "ignore"] }).toString().trim()
    } catch {
      return "unknown"
    }
  }
  return {
    date: new Date().toISOString(),
    nproc: cpus().length,
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    freeMemoryGiB: Math.round(freemem() / 2 ** 30),
    node: process.version,
    openssl: process.versions.openssl,
    redis: run("redis-server", ["--version"]).replace(/^Redis server v=(\S+).*$/, "$1"),
    commit: run("git", ["rev-parse", "--short", "HEAD"]),
    dirty: run("git", ["status", "--porcelain", "--", "src"]) !== "",
    loadAverage: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")
  }
}

const target = (server: Server, material: Material): Target => ({
  kind: server.kind, host: "127.0.0.1", port: server.port, ca: readFileSync(material.certFile, "utf8"), origin: material.origin
})

/**
 * Servers of the given kinds (`tidings-a`, `tidings-b`, `floor-a`, … in order) on a freshly
 * flushed Redis; every session and publisher connection closed and every server stopped after.
 */
const withKinds = async <A>(ctx: Ctx, kinds: ReadonlyArray<Kind>, run: (servers: ReadonlyArray<Server>) => Promise<A>, extraEnv: Record<string, string> = {}): Promise<A> => {
  await ctx.redis.admin.flushall()
  const servers: Array<Server> = []
  const seen: Record<Kind, number> = { tidings: 0, floor: 0 }
  try {
    for (const kind of kinds) {
      const name = `${kind}-${String.fromCharCode(97 + seen[kind]++)}`
      servers.push(kind === "tidings"
        ? await startTidings(name, ctx.material, ctx.redis.url, { extraEnv, cpuProfileDir: profileDir })
        : await startFloor(name, ctx.material, ctx.redis.url, { cpuProfileDir: profileDir }))
    }
    await sleep(500)
    return await run(servers)
  } finally {
    await Promise.all(ctx.clients.map((c) => c.call("closeAll").catch(() => undefined)))
    await ctx.publisher.call("reset").catch(() => undefined)
    for (const server of servers) await server.stop()
  }
}

/** A fresh Redis and `nodes` servers of one kind for each scenario and each side. */
const withServers = <A>(ctx: Ctx, kind: Kind, nodes: number, run: (servers: ReadonlyArray<Server>) => Promise<A>, extraEnv: Record<string, string> = {}): Promise<A> =>
  withKinds(ctx, Array.from({ length: nodes }, () => kind), run, extraEnv)

/** One server of each kind at once, for measurements taken in alternating rounds. */
const withBoth = <A>(ctx: Ctx, run: (servers: Record<Kind, Server>) => Promise<A>): Promise<A> =>
  withKinds(ctx, ["tidings", "floor"], ([tidings, floor]) => run({ tidings: tidings!, floor: floor! }))

/** Round r's order: T F, then F T, …, so neither side always goes first after a pause. */
const alternating = (round: number): ReadonlyArray<Kind> => (round % 2 === 0 ? ["tidings", "floor"] : ["floor", "tidings"])

const median = (xs: ReadonlyArray<number>) => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const openAll = async (ctx: Ctx, args: Omit<OpenArgs, "from" | "count"> & { readonly from: number; readonly count: number }) => {
  // Split over the client workers in contiguous slices.
  const per = Math.ceil(args.count / ctx.clients.length)
  const parts = await Promise.all(ctx.clients.map((c, i) => {
    const count = Math.max(0, Math.min(per, args.count - i * per))
    return count === 0 ? undefined : c.call("open", { ...args, from: args.from + i * per, count })
  }))
  const took = new Histogram()
  const failures: Record<string, number> = {}
  let opened = 0
  let seconds = 0
  let tls: unknown
  for (const part of parts) {
    if (part === undefined) continue
    opened += part.opened
    seconds = Math.max(seconds, part.seconds)
    took.merge(part.took)
    tls ??= part.tls
    for (const [k, v] of Object.entries(part.failures as Record<string, number>)) failures[k] = (failures[k] ?? 0) + v
  }
  return { opened, failed: Object.values(failures).reduce((a, b) => a + b, 0), failures, seconds, took, tls }
}

const status = async (ctx: Ctx, staleMs?: number) => {
  const parts = await Promise.all(ctx.clients.map((c) => c.call("status", { staleMs })))
  const closes: Record<string, number> = {}
  let open = 0
  let stale = 0
  for (const p of parts) {
    open += p.open
    stale += p.stale
    for (const [k, v] of Object.entries(p.closes as Record<string, number>)) closes[k] = (closes[k] ?? 0) + v
  }
  return { open, stale, closes }
}

type Mode = "http" | "bus" | "batch"

/** What the publisher needs for a mode: the server's address for the HTTP ones, the batch size. */
const publishArgs = (ctx: Ctx, publishVia: Server, mode: Mode) => ({
  ...(mode === "bus" ? {} : { target: serviceTarget(ctx, publishVia) }),
  ...(mode === "batch" ? { batchSize } : {})
})

/** Opens the publisher's connections and warms both ends' code paths; its events are discarded. */
const warmUp = async (ctx: Ctx, publishVia: Server, mode: Mode, channelNames: ReadonlyArray<string>, tag: string) => {
  await ctx.publisher.call("run", {
    mode, tag, rate: 500, durationMs: 2_000, channels: channelNames, maxOutstanding: 2_000, sealed: publishVia.kind === "tidings",
    ...publishArgs(ctx, publishVia, mode)
  })
  await drainAndCollect(ctx, tag, Number.POSITIVE_INFINITY)
}

/** Waits until the tag's deliveries stop growing (or reach `expected`), then takes them. */
const drainAndCollect = async (ctx: Ctx, tag: string, expected: number) => {
  let last = -1
  let stableSince = Date.now()
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    const counts = await Promise.all(ctx.clients.map((c) => c.call("counts")))
    const got = counts.reduce((sum, c) => sum + (c[tag] ?? 0), 0)
    if (got >= expected) break
    if (got !== last) {
      last = got
      stableSince = Date.now()
    } else if (Date.now() - stableSince > 1_500) break
    await sleep(200)
  }
  const hist = new Histogram()
  let count = 0
  for (const c of ctx.clients) {
    const part = (await c.call("collect", { tags: [tag] }))[tag]
    count += part.count
    hist.merge(part.hist as HistogramJson)
  }
  return { count, hist }
}

const mb = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10

// --- S1: connections ---------------------------------------------------------------------------

const s1 = (ctx: Ctx, kind: Kind) =>
  withServers(ctx, kind, 1, async ([server]) => {
    const s = server!
    say(`S1 ${kind}: ${s1Connections} authenticated sessions, each subscribed to its own channel`)
    const layout = { target: target(s, ctx.material), prefix: `s1${ctx.runTag}`, layout: "own" as const, concurrency: 100 }
    const warm = Math.min(200, Math.floor(s1Connections / 10))
    await openAll(ctx, { ...layout, from: 0, count: warm, concurrency: 20 })
    await sleep(1_000)
    const snapshotDir = join(RESULTS, "profiles")
    if (heapSnapshots) mkdirSync(snapshotDir, { recursive: true })
    const base = await s.probe({ gc: true, reset: true, ...(heapSnapshots ? { snapshot: join(snapshotDir, `${kind}-s1-base.heapsnapshot`) } : {}) })
    const rss0 = rssBytes(s.pid)
    const cpu0 = cpuUs(s.pid)
    const ramp = await openAll(ctx, { ...layout, from: warm, count: s1Connections - warm })
    const cpu1 = cpuUs(s.pid)
    const duringRamp = await s.probe({ reset: true })
    // At rest past Tidings' 5 s HTTP keep-alive: the ticket requests' API connections are
    // closed by then, so what is measured is the idle WebSocket sessions themselves.
    await sleep(6_000)
    const atRest = await s.probe({ reset: true })
    const after = await s.probe({ gc: true, ...(heapSnapshots ? { snapshot: join(snapshotDir, `${kind}-s1-after.heapsnapshot`) } : {}) })
    const rss1 = rssBytes(s.pid)
    const st = await status(ctx)
    const n = Math.max(1, ramp.opened)
    const result = {
      opened: ramp.opened + warm,
      failed: ramp.failed,
      failures: ramp.failures,
      connectPerS: ramp.opened / ramp.seconds,
      connectMs: summaryMs(ramp.took),
      rssBaseMiB: mb(rss0),
      rssAfterMiB: mb(rss1),
      rssPerConnKiB: (rss1 - rss0) / n / 1024,
      heapPerConnKiB: (after.memory.heapUsed - base.memory.heapUsed) / n / 1024,
      // What V8 holds for its heap (used plus free space in its pages): RSS follows this.
      heapCommittedPerConnKiB: (after.memory.heapTotal - base.memory.heapTotal) / n / 1024,
      /** Committed MiB per V8 space, before and after. */
      heapSpacesMiB: Object.fromEntries(Object.keys(after.spaces).map((space) => [space, {
        before: mb(base.spaces[space]?.size ?? 0),
        after: mb(after.spaces[space]!.size)
      }])),
      externalPerConnKiB: (after.memory.external - base.memory.external) / n / 1024,
      cpuPerConnUs: (cpu1 - cpu0) / n,
      eldRamp: duringRamp.eld,
      eldRest: atRest.eld,
      stillOpen: st.open,
      closes: st.closes,
      tls: ramp.tls
    }
    say(`S1 ${kind}: ${Math.round(result.connectPerS)}/s, ${result.failed} failed, ${result.rssPerConnKiB.toFixed(1)} KiB RSS/conn, ELD p99 ${result.eldRamp.p99.toFixed(1)} ms`)
    return result
  })

// --- S2: fan-out -------------------------------------------------------------------------------

const serviceTarget = (ctx: Ctx, server: Server) => ({
  host: "127.0.0.1", port: server.port, ca: readFileSync(ctx.material.certFile, "utf8"),
  ...(server.kind === "tidings" ? { token: ctx.serviceToken } : {})
})

/** Sessions of the fan-out layout: `connections` clinicians, 10 on each patient channel. */
const openFanout = async (ctx: Ctx, kind: Kind, careVia: Server, subscribeTo: Server, prefix: string) => {
  const { connections, channels } = fanout
  const layout = { prefix, layout: "care" as const, channels }
  const channelNames = Array.from({ length: channels }, (_, i) => `patient:${prefix}p${String(i).padStart(6, "0")}`)
  if (kind === "tidings") {
    const pairs = Array.from({ length: connections }, (_, i) => [
      `${prefix}c${String(i).padStart(6, "0")}`, `${prefix}p${String(i % channels).padStart(6, "0")}`
    ] as const)
    const care = await ctx.publisher.call("care", { target: serviceTarget(ctx, careVia), pairs, concurrency: 32 })
    if (care.ok !== connections) throw new Error(`care relationships: ${JSON.stringify(care)}`)
  }
  const opened = await openAll(ctx, { ...layout, target: target(subscribeTo, ctx.material), from: 0, count: connections, concurrency: 100 })
  if (opened.failed > 0) say(`  ${opened.failed} sessions failed to open: ${JSON.stringify(opened.failures)}`)
  return { opened, channelNames }
}

interface Step {
  readonly mode: Mode
  readonly rate: number
  readonly published: number
  readonly dropped: number
  readonly failed: number
  readonly expected: number
  readonly delivered: number
  readonly lost: number
  readonly deliveredPerS: number
  readonly latency: SummaryMs
  readonly cpuPerDeliveryUs: number
  readonly serverCpuPct: number
  readonly eldP99: number
  /** The load generators' CPU (clients + publisher), Redis's, and the whole machine's busy share. */
  readonly loadCpuPct: number
  readonly redisCpuPct: number
  readonly machineBusyPct: number
  readonly held: boolean
}

const step = async (
  ctx: Ctx, servers: ReadonlyArray<Server>, publishVia: Server, mode: Mode, rate: number,
  channelNames: ReadonlyArray<string>, perChannel: number, tag: string, durationS = stepS
): Promise<Step> => {
  const pids = servers.map((s) => s.pid)
  await Promise.all(servers.map((s) => s.probe({ reset: true })))
  const cpu0 = cpuUsOf(pids)
  const load0 = cpuUsOf(ctx.loadPids)
  const redis0 = cpuUs(ctx.redisPid)
  const machine0 = machineCpuUs()
  const t0 = Date.now()
  const run = await ctx.publisher.call("run", {
    mode, tag, rate, durationMs: durationS * 1000, channels: channelNames, maxOutstanding: 2_000, sealed: publishVia.kind === "tidings",
    ...publishArgs(ctx, publishVia, mode)
  })
  const expected = run.accepted * perChannel
  const got = await drainAndCollect(ctx, tag, expected)
  const cpu1 = cpuUsOf(pids)
  const load1 = cpuUsOf(ctx.loadPids)
  const redis1 = cpuUs(ctx.redisPid)
  const machine1 = machineCpuUs()
  const seconds = (Date.now() - t0) / 1000
  const eld = await Promise.all(servers.map((s) => s.probe()))
  const failed = Object.values(run.failures as Record<string, number>).reduce((a, b) => a + b, 0) + run.unanswered
  const latency = summaryMs(got.hist)
  const lost = Math.max(0, expected - got.count)
  const result: Step = {
    mode, rate,
    published: run.accepted,
    dropped: run.dropped,
    failed,
    expected,
    delivered: got.count,
    lost,
    deliveredPerS: got.count / run.sendSeconds,
    latency,
    cpuPerDeliveryUs: (cpu1 - cpu0) / Math.max(1, got.count),
    serverCpuPct: ((cpu1 - cpu0) / 1e6 / seconds) * 100,
    eldP99: Math.max(...eld.map((e) => e.eld.p99)),
    loadCpuPct: ((load1 - load0) / 1e6 / seconds) * 100,
    redisCpuPct: ((redis1 - redis0) / 1e6 / seconds) * 100,
    machineBusyPct: ((machine1 - machine0) / 1e6 / seconds / cpus().length) * 100,
    held: run.dropped === 0 && failed === 0 && lost === 0 && run.accepted === run.total && latency.p99 < 50
  }
  say(`  ${mode} ${rate}/s: ${Math.round(result.deliveredPerS)} delivered/s, p50 ${latency.p50.toFixed(1)} p99 ${latency.p99.toFixed(1)} max ${latency.max.toFixed(0)} ms, lost ${lost}, dropped ${run.dropped}, failed ${failed}, ${result.cpuPerDeliveryUs.toFixed(1)} µs CPU/delivery; CPU % server ${result.serverCpuPct.toFixed(0)} load ${result.loadCpuPct.toFixed(0)} redis ${result.redisCpuPct.toFixed(0)} machine ${result.machineBusyPct.toFixed(0)}/100; ELD p99 ${result.eldP99.toFixed(0)} ms → ${result.held ? "held" : "NOT held"}`)
  return result
}

/** `firstHeld` overrides the first step's verdict (the S2 reference judges it from its rounds). */
const highestHeld = (steps: ReadonlyArray<Step>, mode: Mode, firstHeld?: boolean) => {
  let best = 0
  let first = true
  for (const s of steps) {
    if (s.mode !== mode) continue
    const held = first && firstHeld !== undefined ? firstHeld : s.held
    first = false
    if (!held) break
    best = s.rate
  }
  return best
}

const s2 = (ctx: Ctx, kind: Kind) =>
  withServers(ctx, kind, 1, async ([server]) => {
    const s = server!
    say(`S2 ${kind}: ${fanout.connections} sessions on ${fanout.channels} channels, steps ${rates.join("/")} events/s × ${stepS} s, via POST /v1/events and via the bus`)
    const prefix = `s2${ctx.runTag}${kind[0]}`
    const { opened, channelNames } = await openFanout(ctx, kind, s, s, prefix)
    const steps: Array<Step> = []
    for (const mode of modes) {
      await warmUp(ctx, s, mode, channelNames, `${kind[0]}${mode[0]}w`)
      for (const rate of rates) {
        steps.push(await step(ctx, [s], s, mode, rate, channelNames, fanout.connections / fanout.channels, `${kind[0]}${mode[0]}${rate}`))
        await sleep(1_000)
      }
    }
    // The same steps through POST /v1/events/batch, beside the single route's. Kept apart from
    // `steps`, which the report pairs with the floor's one by one.
    const batchSteps: Array<Step> = []
    if (kind === "tidings" && batchSize > 0) {
      say(`S2 ${kind}: the same steps via POST /v1/events/batch, ${batchSize} events a request`)
      await warmUp(ctx, s, "batch", channelNames, `${kind[0]}Bw`)
      for (const rate of rates) {
        const batched = await step(ctx, [s], s, "batch", rate, channelNames, fanout.connections / fanout.channels, `${kind[0]}B${rate}`)
        const single = steps.find((x) => x.mode === "http" && x.rate === rate)
        if (single !== undefined) {
          say(`  batch ${rate}/s: ${batched.cpuPerDeliveryUs.toFixed(1)} µs CPU/delivery vs ${single.cpuPerDeliveryUs.toFixed(1)} µs through POST /v1/events`)
        }
        batchSteps.push(batched)
        await sleep(1_000)
      }
    }
    const st = await status(ctx)
    return {
      sessions: opened.opened,
      sessionFailures: opened.failures,
      steps,
      ...(kind === "tidings" && batchSize > 0 ? { batchSize, batchSteps, highestHeldBatch: highestHeld(batchSteps, "batch") } : {}),
      highestHeld: { http: highestHeld(steps, "http"), bus: highestHeld(steps, "bus") },
      stillOpen: st.open,
      closes: st.closes
    }
  })

// --- S2 reference: CPU per delivery, interleaved ------------------------------------------------

/**
 * The 1k/s targets, read apart from S2's steps: both servers up with S2's sessions, then the
 * 1k/s step of each mode in alternating rounds (T F, F T, …). CPU per delivery is each side's
 * median bus round; a side holds 1k/s when most of its rounds held. Run back to back, the two
 * sides' steps lie minutes apart, and the machine's noise in between moved the CPU ratio
 * between 1.1× and 1.5× on the same code, and put a lone p99 spike on either side.
 */
const s2Reference = (ctx: Ctx) =>
  withBoth(ctx, async (servers) => {
    const rate = rates[0]!
    say(`S2 reference: ${modes.join(" and ")} ${rate}/s for ${referenceStepS} s, ${referenceRounds} rounds per side, alternating, both servers up`)
    const perChannel = fanout.connections / fanout.channels
    const layouts = {} as Record<Kind, ReadonlyArray<string>>
    for (const kind of ["tidings", "floor"] as const) {
      const { channelNames } = await openFanout(ctx, kind, servers[kind], servers[kind], `s2r${ctx.runTag}${kind[0]}`)
      layouts[kind] = channelNames
    }
    const runs: Record<Kind, Record<string, Array<Step>>> = { tidings: {}, floor: {} }
    for (const mode of modes) {
      for (const kind of ["tidings", "floor"] as const) {
        await warmUp(ctx, servers[kind], mode, layouts[kind], `${kind[0]}r${mode[0]}w`)
        runs[kind][mode] = []
      }
      for (let round = 0; round < referenceRounds; round++) {
        for (const kind of alternating(round)) {
          runs[kind][mode]!.push(await step(ctx, [servers[kind]], servers[kind], mode, rate, layouts[kind], perChannel, `${kind[0]}r${mode[0]}${round}`, referenceStepS))
          await sleep(1_000)
        }
      }
    }
    const summarize = (kind: Kind) => {
      const byMode = Object.fromEntries(modes.map((mode) => {
        const rs = runs[kind][mode]!
        return [mode, {
          cpuPerDeliveryUsByRound: rs.map((r) => r.cpuPerDeliveryUs),
          p99ByRound: rs.map((r) => r.latency.p99),
          heldByRound: rs.map((r) => r.held),
          held: rs.filter((r) => r.held).length * 2 > rs.length
        }]
      }))
      const bus = byMode.bus
      return {
        rate,
        rounds: referenceRounds,
        byMode,
        ...(bus === undefined ? {} : {
          cpuPerDeliveryUs: median(bus.cpuPerDeliveryUsByRound),
          cpuPerDeliveryUsByRound: bus.cpuPerDeliveryUsByRound
        })
      }
    }
    const result = { tidings: summarize("tidings"), floor: summarize("floor") }
    if (result.tidings.cpuPerDeliveryUs !== undefined) {
      say(`S2 reference: median CPU per delivery ${result.tidings.cpuPerDeliveryUs.toFixed(1)} µs (Tidings) vs ${result.floor.cpuPerDeliveryUs!.toFixed(1)} µs (floor)`)
    }
    return result
  })

// --- S3: churn ---------------------------------------------------------------------------------

/**
 * Churn in alternating rounds (T F, F T, T F, …) with both servers up, so a noisy minute on a
 * shared machine falls on both sides alike; CPU per session is each side's median round.
 */
const s3 = (ctx: Ctx) =>
  withBoth(ctx, async (servers) => {
    say(`S3: ${churnRounds} rounds of ${churnS} s per side, alternating; 50 clients doing (Tidings: ticket +) connect + subscribe + first event + close`)
    const rounds: Record<Kind, Array<{ completed: number; resumed: number; seconds: number; cpuUs: number; failures: Record<string, number>; firstEvent: HistogramJson }>> = { tidings: [], floor: [] }
    // A warm-up round on each side, not counted: a node in service runs with its code optimized
    // (Tidings' first seconds of churn cost a quarter more CPU per session than its later ones).
    for (const kind of ["tidings", "floor"] as const) {
      await ctx.clients[0]!.call("churn", {
        target: target(servers[kind], ctx.material), prefix: `s3${ctx.runTag}${kind[0]}w`, concurrency: 50, durationMs: Math.min(churnS, 4) * 1000, tag: `${kind[0]}cw`
      })
    }
    for (let round = 0; round < churnRounds; round++) {
      for (const kind of alternating(round)) {
        const s = servers[kind]
        const cpu0 = cpuUs(s.pid)
        const churn = await ctx.clients[0]!.call("churn", {
          target: target(s, ctx.material), prefix: `s3${ctx.runTag}${kind[0]}r${round}`, concurrency: 50, durationMs: churnS * 1000, tag: `${kind[0]}c${round}`
        })
        const cpuUsed = cpuUs(s.pid) - cpu0
        rounds[kind].push({ ...churn, cpuUs: cpuUsed })
        say(`  S3 round ${round + 1} ${kind}: ${(churn.completed / churn.seconds).toFixed(0)} sessions/s, ${(cpuUsed / Math.max(1, churn.completed)).toFixed(0)} µs CPU/session`)
        await sleep(500)
      }
    }
    const probes = { tidings: await servers.tidings.probe(), floor: await servers.floor.probe() }
    const summarize = (kind: Kind) => {
      const rs = rounds[kind]
      const completed = rs.reduce((a, r) => a + r.completed, 0)
      const seconds = rs.reduce((a, r) => a + r.seconds, 0)
      const hist = new Histogram()
      const failures: Record<string, number> = {}
      for (const r of rs) {
        hist.merge(r.firstEvent)
        for (const [k, v] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + v
      }
      const perRound = rs.map((r) => r.cpuUs / Math.max(1, r.completed))
      const firstEvent = summaryMs(hist)
      const result = {
        rounds: rs.length,
        completed,
        failures,
        sessionsPerS: completed / seconds,
        tlsResumed: rs.reduce((a, r) => a + r.resumed, 0),
        firstEventMs: firstEvent,
        cpuPerSessionUs: median(perRound),
        cpuPerSessionUsByRound: perRound,
        cpuPerSessionUsPooled: rs.reduce((a, r) => a + r.cpuUs, 0) / Math.max(1, completed),
        serverCpuPct: (rs.reduce((a, r) => a + r.cpuUs, 0) / 1e6 / seconds) * 100,
        eldP99: probes[kind].eld.p99
      }
      say(`S3 ${kind}: ${result.sessionsPerS.toFixed(0)} sessions/s, first event p99 ${firstEvent.p99.toFixed(1)} ms, median ${result.cpuPerSessionUs.toFixed(0)} µs CPU/session (rounds ${perRound.map((x) => x.toFixed(0)).join(", ")}), ${result.tlsResumed}/${result.completed} TLS resumed`)
      return result
    }
    return { tidings: summarize("tidings"), floor: summarize("floor") }
  })

// --- S4: two nodes -----------------------------------------------------------------------------

const s4 = (ctx: Ctx, kind: Kind) =>
  withServers(ctx, kind, 2, async ([a, b]) => {
    say(`S4 ${kind}: ${fanout.connections} sessions on node B, 5000 events/s published through node A for ${stepS} s`)
    const prefix = `s4${ctx.runTag}${kind[0]}`
    const { opened, channelNames } = await openFanout(ctx, kind, a!, b!, prefix)
    await warmUp(ctx, a!, "http", channelNames, `${kind[0]}xw`)
    const result = await step(ctx, [a!, b!], a!, "http", 5_000, channelNames, fanout.connections / fanout.channels, `${kind[0]}x5000`)
    return { sessions: opened.opened, ...result }
  })

// --- S5: scale ---------------------------------------------------------------------------------

const s5 = (ctx: Ctx, kind: Kind, connections: number) =>
  withServers(ctx, kind, 1, async ([server]) => {
    const s = server!
    const restS = Number(option("--rest-s") ?? 60)
    const publishS = Number(option("--publish-s") ?? 30)
    say(`S5 ${kind}: ${connections} idle sessions over ${ctx.clients.length} client processes and ${SPREAD} source addresses, heartbeat 25 s`)
    const layout = { target: target(s, ctx.material), prefix: `s5${ctx.runTag}${kind[0]}`, layout: "own" as const }
    // As in S1: the baseline after a warm-up (code compiled, pools filled) and a full GC, so
    // the per-session figure is what the sessions hold, not the process's start-up.
    const warm = Math.min(200, Math.floor(connections / 10))
    const warmed = await openAll(ctx, { ...layout, from: 0, count: warm, concurrency: 20 })
    await sleep(1_000)
    await s.probe({ gc: true })
    const rss0 = rssBytes(s.pid)
    const ramp = await openAll(ctx, { ...layout, from: warm, count: connections - warm, concurrency: 100 })
    say(`  ${ramp.opened + warmed.opened} open (${Math.round(ramp.opened / ramp.seconds)}/s), ${ramp.failed + warmed.failed} failed; ${restS} s at rest`)
    await s.probe({ reset: true })
    const cpu0 = cpuUs(s.pid)
    await sleep(restS * 1000)
    const cpu1 = cpuUs(s.pid)
    const rest = await s.probe({ reset: true })
    // Idle sessions after their rest, heartbeats included, after a full GC.
    await s.probe({ gc: true })
    const rssIdle = rssBytes(s.pid)
    const heartbeats = await status(ctx, (25 + 10 + 5) * 1000)
    // 1,000 channels spread over every client process, one event per second each.
    const stride = Math.max(1, Math.floor(ramp.opened / 1000))
    const channels = Array.from({ length: Math.min(1000, ramp.opened) }, (_, k) => `patient:s5${ctx.runTag}${kind[0]}p${String(k * stride).padStart(6, "0")}`)
    await warmUp(ctx, s, "http", channels, `${kind[0]}sw`)
    const published = await step(ctx, [s], s, "http", channels.length, channels, 1, `${kind[0]}s`, publishS)
    const rss1 = rssBytes(s.pid)
    const after = await status(ctx, (25 + 10 + 5) * 1000)
    return {
      opened: ramp.opened + warmed.opened,
      failed: ramp.failed + warmed.failed,
      failures: { ...warmed.failures, ...ramp.failures },
      connectPerS: ramp.opened / ramp.seconds,
      /** The whole process once it has also served the publish step. */
      rssMiB: mb(rss1),
      rssIdleMiB: mb(rssIdle),
      rssPerConnKiB: (rssIdle - rss0) / Math.max(1, ramp.opened) / 1024,
      cpuAtRestPct: ((cpu1 - cpu0) / 1e6 / restS) * 100,
      eldAtRest: rest.eld,
      missedHeartbeats: heartbeats.stale + Math.max(0, ramp.opened - heartbeats.open),
      closedByServer: after.closes,
      latency: published.latency,
      lost: published.lost,
      stillOpen: after.open
    }
  }, { TIDINGS_IDLE_TIMEOUT_S: "86400" })

main().then(
  () => cleanup().then(() => process.exit(0)),
  (error) => {
    say(`failed: ${error instanceof Error ? error.stack : String(error)}`)
    void cleanup().then(() => process.exit(1))
  }
)
