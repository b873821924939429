// S6, the reconnect storm (issue 17): N sessions on one node, each on its own patient channel;
// the node restarted (SIGTERM: Tidings closes every socket with 1001 and exits; started again on
// the same port, keys and Redis); every client back with the SDK's backoff and resumed. Timed
// from the SIGTERM to the last session back; every event checked, exactly once and in order.
import { readFileSync } from "node:fs"
import { get } from "node:http"
import { cpus } from "node:os"
import { join } from "node:path"
import type { Redis } from "ioredis"
import { connectBus } from "../lib/bus.ts"
import { nowUs, sleep } from "../lib/clock.ts"
import { Histogram, summaryMs } from "../lib/hist.ts"
import type { IssuerKey } from "../lib/jwt.ts"
import { freePort } from "../lib/net.ts"
import { cpuUs, cpuUsOf, machineCpuUs } from "../lib/proc.ts"
import { Worker } from "../lib/rpc.ts"
import { type Material, type Server, startFloor, startTidings } from "../lib/servers.ts"
import type { Target } from "../load/clients.ts"

export interface StormCtx {
  readonly root: string
  readonly material: Material
  readonly redis: { readonly url: string; readonly admin: Redis; readonly pid: number }
  readonly issuer: IssuerKey
  readonly runTag: string
  readonly spread: number
  readonly target: (server: Server) => Target
  readonly say: (text: string) => void
  /** `--profile`: both nodes (before and after the restart) write a .cpuprofile here. */
  readonly cpuProfileDir: string | undefined
}

/**
 * Tidings' per-address limits in S6: the defaults (600 a minute). A storm asks each address
 * for one ticket and one connect per session behind it (a refused TCP connect while the node
 * is down reaches no limiter), so the defaults carry 600 sessions per address; the bench has
 * 50 (10,000 over 200 addresses). A hospital whose devices share one NAT address sets both
 * limits to at least the sessions behind its busiest address (see docs/BENCHMARKS.md).
 */
export const S6_ENV: Readonly<Record<string, string>> = {
  TIDINGS_RATE_CONNECTS_PER_IP_PER_MIN: "600",
  TIDINGS_RATE_TICKETS_PER_IP_PER_MIN: "600"
}

/** Session i's patient channel (the storm clients subscribe to the same names: bench/load/storm.ts). */
export const stormChannel = (prefix: string, i: number) => `patient:${prefix}p${String(i).padStart(6, "0")}`

/** How long after the new node listens a session may take to be back before it counts as failed. */
const DEADLINE_S = 120
/** Event phases: a before the restart, b while the node is down (through the bus), c once all are back. */
const PHASES = ["s6a", "s6b", "s6c"] as const

export const s6 = async (ctx: StormCtx, kind: "tidings" | "floor", sessions: number, workerCount: number) => {
  await ctx.redis.admin.flushall()
  const sealed = kind === "tidings"
  const prefix = `s6${ctx.runTag}${kind[0]}`
  const channels = Array.from({ length: sessions }, (_, i) => stormChannel(prefix, i))
  const workers = Array.from({ length: workerCount }, (_, w) =>
    new Worker(`storm-${w}`, join(ctx.root, "bench/load/storm.ts"), { execArgv: ["--max-old-space-size=4096"] }))
  const bus = await connectBus(ctx.redis.url)
  const metricsPort = await freePort()
  const start = (port?: number): Promise<Server> =>
    kind === "tidings"
      ? startTidings("tidings-a", ctx.material, ctx.redis.url, {
        extraEnv: { ...S6_ENV, TIDINGS_METRICS_LISTEN: `127.0.0.1:${metricsPort}` }, cpuProfileDir: ctx.cpuProfileDir, ...(port === undefined ? {} : { port })
      })
      : startFloor("floor-a", ctx.material, ctx.redis.url, { cpuProfileDir: ctx.cpuProfileDir, ...(port === undefined ? {} : { port }) })
  let server = await start()
  const all = <A = any>(cmd: string, args: unknown = {}) => Promise.all(workers.map((w) => w.call<A>(cmd, args)))
  try {
    await Promise.all(workers.map((w, i) => w.call("setup", { issuer: ctx.issuer, spread: ctx.spread, worker: i })))
    await sleep(500)

    // 1. Open every session (100 in flight, as S1), then one event each so every client holds a position.
    ctx.say(`S6 ${kind}: opening ${sessions} sessions over ${workerCount} client processes, each on its own patient channel`)
    const per = Math.ceil(sessions / workerCount)
    const opened = await Promise.all(workers.map((w, i) => w.call("open", {
      target: ctx.target(server), prefix, from: i * per, count: Math.max(0, Math.min(per, sessions - i * per)), concurrency: Math.ceil(100 / workerCount)
    })))
    const openSeconds = Math.max(...opened.map((o) => o.seconds))
    const openedCount = opened.reduce((a, o) => a + o.opened, 0)
    ctx.say(`  ${openedCount} subscribed in ${openSeconds.toFixed(1)} s (${Math.round(openedCount / openSeconds)}/s), ${opened.reduce((a, o) => a + o.late, 0)} late`)
    await publishAll(bus, channels, PHASES[0], sealed)
    await untilDelivered(all, sessions)

    // 2. The restart: SIGTERM, the exit, the phase-b events while down, the same node again.
    await all("mark")
    const tcp0 = tcpCounters()
    const t0 = nowUs()
    server.child.kill("SIGTERM")
    const exit = await exited(server, 30_000)
    const tExit = nowUs()
    // Phase b goes into Redis while no node is up, beside the new node's start (not delaying
    // it): no client can be back before the node listens, so each must get b from history.
    let tPublished = 0
    const down = publishAll(bus, channels, PHASES[1], sealed).then(() => void (tPublished = nowUs()))
    server = await start(server.port)
    const tListening = nowUs()
    await down
    ctx.say(`  SIGTERM → exit ${ms(tExit - t0)} ms (${exit}), → listening ${ms(tListening - tExit)} ms more; phase-b events in Redis ${ms(tPublished - tExit)} ms after the exit`)

    // 3. Until every session is back (or has given up), or the deadline.
    // Once a second: sessions back, the CPU of the node, of the storm clients, of Redis and of
    // the machine, and the node's event-loop delay, to tell a node at its limit from clients
    // waiting out their backoff (or a SYN retransmit: see tcpCounters).
    const clientPids = workers.map((w) => w.child.pid!)
    const cpu0 = cpuUs(server.pid)
    const timeline: Array<{ s: number; back: number; serverCpuPct: number; clientCpuPct: number; redisCpuPct: number; machineBusyPct: number; eldMaxMs: number }> = []
    let sample = { at: nowUs(), server: cpu0, clients: cpuUsOf(clientPids), redis: cpuUs(ctx.redis.pid), machine: machineCpuUs() }
    await server.probe({ reset: true }).catch(() => undefined)
    let last = { back: 0, unrecovered: 0, stopped: 0 }
    let lastSaid = 0
    while (nowUs() - tListening < DEADLINE_S * 1e6) {
      const parts = await all("progress", { sinceUs: t0, tidings: sealed })
      last = parts.reduce((a, p) => ({ back: a.back + p.back, unrecovered: a.unrecovered + p.unrecovered, stopped: a.stopped + p.stopped }), { back: 0, unrecovered: 0, stopped: 0 })
      const done = last.back + last.stopped + last.unrecovered >= sessions && last.unrecovered === 0
      if (nowUs() - sample.at >= 1e6 || done) {
        const now = { at: nowUs(), server: cpuUs(server.pid), clients: cpuUsOf(clientPids), redis: cpuUs(ctx.redis.pid), machine: machineCpuUs() }
        const pct = (a: number, b: number) => Math.round(((b - a) / (now.at - sample.at)) * 100)
        const eld = await Promise.race([server.probe({ reset: true }).then((p) => p.eld.max), sleep(2_000).then(() => Number.NaN)])
        timeline.push({
          s: Math.round((now.at - t0) / 1e5) / 10, back: last.back,
          serverCpuPct: pct(sample.server, now.server), clientCpuPct: pct(sample.clients, now.clients), redisCpuPct: pct(sample.redis, now.redis),
          machineBusyPct: Math.round(pct(sample.machine, now.machine) / cpus().length), eldMaxMs: Math.round(eld)
        })
        sample = now
      }
      if (done) break
      if (Date.now() - lastSaid > 5_000 && timeline.length > 0) {
        lastSaid = Date.now()
        const t = timeline.at(-1)!
        ctx.say(`  ${ms(nowUs() - t0)} ms after SIGTERM: ${last.back} back, ${last.unrecovered} subscribed but not recovered, ${last.stopped} stopped; CPU % node ${t.serverCpuPct} clients ${t.clientCpuPct} redis ${t.redisCpuPct} machine ${t.machineBusyPct}/100; ELD max ${t.eldMaxMs} ms`)
      }
      await sleep(250)
    }
    const cpu1 = cpuUs(server.pid)
    const tcp1 = tcpCounters()
    const parts = await all("storm", { sinceUs: t0, tidings: sealed })
    const hist = new Histogram()
    const backMs: Array<number> = []
    const merged = { notBack: {}, tickets: {}, upgrades: {}, closes: {} } as Record<"notBack" | "tickets" | "upgrades" | "closes", Record<string, number>>
    let attempts = 0
    let subscribeErrors = 0
    const ticketHist = new Histogram()
    const socketHist = new Histogram()
    let firstTicketUs = Number.POSITIVE_INFINITY
    let first1001Us = Number.POSITIVE_INFINITY
    let last1001Us = 0
    for (const p of parts) {
      if (p.first1001Us > 0) first1001Us = Math.min(first1001Us, p.first1001Us)
      last1001Us = Math.max(last1001Us, p.last1001Us)
      for (const x of p.ticketMs as Array<number>) ticketHist.record(x * 1000)
      for (const x of p.socketMs as Array<number>) socketHist.record(x * 1000)
      if (p.firstTicketUs > 0) firstTicketUs = Math.min(firstTicketUs, p.firstTicketUs)
      for (const x of p.backMs as Array<number>) {
        backMs.push(x)
        hist.record(x * 1000)
      }
      for (const key of ["notBack", "tickets", "upgrades", "closes"] as const) add(merged[key], p[key])
      attempts += p.attempts
      subscribeErrors += p.subscribeErrors
    }
    const lastBackMs = backMs.length === 0 ? Number.NaN : Math.max(...backMs)
    const listeningMs = (tListening - t0) / 1000
    const metrics = kind === "tidings" ? await scrape(metricsPort) : undefined

    // 4. One more event each, then every session's events against a, b, c (the floor: a and c).
    await publishAll(bus, channels, PHASES[2], sealed)
    const expectedIds = sealed ? [...PHASES] : [PHASES[0], PHASES[2]]
    await untilDelivered(all, sessions * expectedIds.length)
    const checks = await all("verify", { ids: expectedIds })
    const events = checks.reduce((a, c) => {
      for (const k of Object.keys(a) as Array<keyof typeof a>) a[k] += c[k]
      return a
    }, { sessions: 0, complete: 0, lost: 0, duplicated: 0, unexpected: 0, unordered: 0, resets: 0, gap: 0 })

    const failed = sum(merged.notBack)
    const result = {
      sessions,
      opened: openedCount,
      openPerS: openedCount / openSeconds,
      exit,
      /** ms after the SIGTERM: the old node gone, the phase-b events in Redis, the new node listening. */
      exitMs: (tExit - t0) / 1000,
      /** The old node's drain as the clients saw it: the first and the last 1001. */
      first1001Ms: (first1001Us - t0) / 1000,
      last1001Ms: (last1001Us - t0) / 1000,
      downPublishedMs: (tPublished - t0) / 1000,
      listeningMs,
      back: backMs.length,
      failed,
      failures: merged.notBack,
      /** SIGTERM → the last session back (subscribed again; Tidings: recovered). */
      lastBackMs,
      /** The new node listening → the last one back. */
      stormMs: lastBackMs - listeningMs,
      backMsFromSigterm: summaryMs(hist),
      /** Sessions back per second between the new node listening and the last one back. */
      reopenPerS: backMs.length / Math.max(0.001, (lastBackMs - listeningMs) / 1000),
      serverCpuPerReopenUs: (cpu1 - cpu0) / Math.max(1, backMs.length),
      connectAttempts: attempts,
      /** Tidings: the first ticket granted after the restart (ms after the SIGTERM), and the round trips of those granted. */
      ...(sealed ? { firstTicketMs: (firstTicketUs - t0) / 1000, ticketMs: summaryMs(ticketHist) } : {}),
      /** A socket's life from its creation to `subscribed` (TLS, upgrade, welcome, subscribe, resume). */
      socketMs: summaryMs(socketHist),
      tickets: merged.tickets,
      upgradeErrors: merged.upgrades,
      closes: merged.closes,
      subscribeErrors,
      /** The machine's TCP counters over the storm (SIGTERM → the last back): connects the kernel dropped at a full accept queue, and the SYNs clients sent again. */
      tcp: Object.fromEntries(Object.entries(tcp1).map(([k, v]) => [k, v - (tcp0[k] ?? 0)])),
      timeline,
      events: {
        expectedPerSession: expectedIds.length,
        ...events
      },
      ...(metrics === undefined ? {} : { metrics })
    }
    ctx.say(`S6 ${kind}: ${result.back}/${sessions} back, last ${(lastBackMs / 1000).toFixed(1)} s after SIGTERM (${(result.stormMs / 1000).toFixed(1)} s after listening, ${Math.round(result.reopenPerS)}/s), ${failed} failed ${JSON.stringify(merged.notBack)}; events: ${events.complete}/${events.sessions} sessions complete, ${events.lost} lost, ${events.duplicated} duplicated, ${events.unordered} out of order, ${events.resets} resets${sealed ? "" : `, ${events.gap} missed while down (no history)`}`)
    ctx.say(`  1001s from ${ms(first1001Us - t0)} to ${ms(last1001Us - t0)} ms after SIGTERM; ${sealed ? `first ticket ${ms(firstTicketUs - t0)} ms after SIGTERM, ticket round trip p50/p99/max ${fmt(summaryMs(ticketHist))} ms; ` : ""}socket → subscribed p50/p99/max ${fmt(summaryMs(socketHist))} ms`)
    ctx.say(`  TCP (machine-wide) ${JSON.stringify(result.tcp)}`)
    ctx.say(`  tickets ${JSON.stringify(merged.tickets)} upgrade errors ${JSON.stringify(merged.upgrades)} closes ${JSON.stringify(merged.closes)}`)
    return result
  } finally {
    await all("closeAll").catch(() => undefined)
    for (const w of workers) await w.stop()
    await bus.close()
    await server.stop()
  }
}

const ms = (us: number) => Math.round(us / 1000)
const fmt = (l: { p50: number; p99: number; max: number }) => `${Math.round(l.p50)}/${Math.round(l.p99)}/${Math.round(l.max)}`
const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0)
const add = (into: Record<string, number>, from: Record<string, number>) => {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v
}

/** Exit code or signal once the process is gone; SIGKILL after `graceMs` (then "killed"). */
const exited = (server: Server, graceMs: number): Promise<string> =>
  new Promise((resolve) => {
    const child = server.child
    if (child.exitCode !== null || child.signalCode !== null) return resolve(`exit ${child.exitCode ?? child.signalCode}`)
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs)
    child.once("exit", (code, signal) => {
      clearTimeout(timer)
      resolve(signal === "SIGKILL" ? "killed" : `exit ${code ?? signal}`)
    })
  })

/** One event on every channel through the bus (as a Tidings node would publish it), 500 in flight. */
const publishAll = async (bus: Awaited<ReturnType<typeof connectBus>>, channels: ReadonlyArray<string>, phase: string, sealed: boolean) => {
  for (let k = 0; k < channels.length; k += 500) {
    await Promise.all(channels.slice(k, k + 500).map((channel, j) =>
      bus.publish(channel, `${phase}_${k + j}`, "appointment.updated", "ref_bench0001", "bench", sealed)))
  }
}

/** Waits until the clients hold `expected` events, or their count stops growing for 3 s. */
const untilDelivered = async (all: (cmd: string) => Promise<Array<number>>, expected: number) => {
  let last = -1
  let since = Date.now()
  while (Date.now() - since < 3_000) {
    const got = (await all("events")).reduce((a, b) => a + b, 0)
    if (got >= expected) return
    if (got !== last) {
      last = got
      since = Date.now()
    }
    await sleep(200)
  }
}

/**
 * TcpExt counters of /proc/net/netstat: ListenOverflows (a SYN or a handshake's last ACK
 * dropped because the listener's accept queue was full) and TCPSynRetrans (SYNs sent again, the
 * first after 1 s, then 2, 4, 8, … s). Machine-wide: other processes' connections count too.
 */
const tcpCounters = (): Record<string, number> => {
  const lines = readFileSync("/proc/net/netstat", "utf8").split("\n").filter((line) => line.startsWith("TcpExt:"))
  const names = lines[0]?.split(" ") ?? []
  const values = lines[1]?.split(" ") ?? []
  const out: Record<string, number> = {}
  for (const name of ["ListenOverflows", "ListenDrops", "TCPSynRetrans"]) {
    const i = names.indexOf(name)
    if (i > 0) out[name] = Number(values[i])
  }
  return out
}

/** The Tidings node's counters that say what refused or cut a session during the storm. */
const scrape = (port: number): Promise<Array<string>> =>
  new Promise((resolve) => {
    get({ host: "127.0.0.1", port, path: "/metrics", timeout: 5_000 }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (body += chunk))
      res.on("end", () => resolve(body.split("\n").filter((line) =>
        /^tidings_(rate_limited|connects|closes|auth_failures|resets|origin_rejections)_total/.test(line) && !/ 0$/.test(line))))
    }).on("error", () => resolve([]))
  })
