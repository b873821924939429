// Load generator, subscriber side (a child process of bench/run.ts, never the server's): opens
// authenticated WebSocket sessions the way an app does (access token → POST /v1/tickets →
// wss:// with the ticket → subscribe), keeps them, and times every event that arrives against
// the publish time the publisher wrote into the event id. Also runs the churn scenario.
import { Agent } from "node:https"
import { createSecureContext, type SecureContext, type TLSSocket } from "node:tls"
import { WebSocket } from "ws"
import { ECDH_CURVES } from "../../src/server/Tls.ts"
import { connectBus, type Bus } from "../lib/bus.ts"
import { nowUs, sleep } from "../lib/clock.ts"
import { Histogram } from "../lib/hist.ts"
import { type IssuerKey, makeSigner } from "../lib/jwt.ts"
import { sourceAddress } from "../lib/net.ts"
import { postTicket } from "../lib/tickets.ts"
import { note, serve } from "../lib/rpc.ts"

export interface Target {
  readonly kind: "tidings" | "floor"
  readonly host: string
  readonly port: number
  readonly ca: string
  readonly origin: string
}

interface Setup {
  readonly issuer: IssuerKey
  readonly redisUrl: string
  /** How many loopback source addresses to spread sockets over. */
  readonly spread: number
  /** This worker's number, so two workers never pick the same source addresses in a row. */
  readonly worker: number
}

/** Which sessions to open: `own` = patients on their own channel; `care` = clinicians, `perChannel` to a patient channel. */
export interface OpenArgs {
  readonly target: Target
  readonly prefix: string
  readonly from: number
  readonly count: number
  readonly layout: "own" | "care"
  readonly channels?: number
  readonly concurrency: number
}

interface Session {
  readonly ws: WebSocket
  readonly channel: string
  lastPing: number
  pings: number
}

let setup: Setup | undefined
let sign: ReturnType<typeof makeSigner> | undefined
let bus: Bus | undefined
const contexts = new Map<string, SecureContext>()
const secureContext = (ca: string) => {
  let context = contexts.get(ca)
  if (context === undefined) {
    context = createSecureContext({ ca, ecdhCurve: ECDH_CURVES })
    contexts.set(ca, context)
  }
  return context
}

const sessions = new Set<Session>()
const closes = new Map<string, number>()
const byTag = new Map<string, { count: number; hist: Histogram }>()
let tlsSeen: { protocol: string | null; group: string | undefined } | undefined

const tally = (map: Map<string, number>, key: string, n = 1) => map.set(key, (map.get(key) ?? 0) + n)

// ---------------------------------------------------------------------------------------------
// Events: the id is "<b|c><tag>_<publish time µs>_<n>"; everything else in the frame is ignored.

const ID = Buffer.from('"id":"')
const EVENT = Buffer.from('{"type":"event"')

const onEvent = (data: Buffer): boolean => {
  if (data.length < EVENT.length || data.compare(EVENT, 0, EVENT.length, 0, EVENT.length) !== 0) return false
  const at = data.indexOf(ID)
  if (at < 0) return true
  const start = at + ID.length
  const end = data.indexOf(34, start) // '"'
  const id = data.toString("latin1", start, end)
  const first = id.indexOf("_")
  const second = id.indexOf("_", first + 1)
  const tag = id.slice(1, first)
  const sent = Number(id.slice(first + 1, second))
  let entry = byTag.get(tag)
  if (entry === undefined) {
    entry = { count: 0, hist: new Histogram() }
    byTag.set(tag, entry)
  }
  entry.count += 1
  if (Number.isFinite(sent)) entry.hist.record(nowUs() - sent)
  return true
}

// ---------------------------------------------------------------------------------------------
// One session: ticket (Tidings only), upgrade, subscribe, wait for `subscribed`.

const ticketAgents = new Map<string, Agent>()
const ticketAgent = (target: Target, local: string) => {
  const key = `${target.host}:${target.port}:${local}`
  let agent = ticketAgents.get(key)
  if (agent === undefined) {
    agent = new Agent({ keepAlive: true, maxSockets: 4, localAddress: local, secureContext: secureContext(target.ca) } as any)
    ticketAgents.set(key, agent)
  }
  return agent
}

const ticketFor = async (target: Target, role: string, ref: string, agent: Agent): Promise<string> => {
  const answer = await postTicket(target, sign!({ role, ref }), agent).catch((error: NodeJS.ErrnoException) => {
    throw new Error(`ticket_${error.code ?? "error"}`)
  })
  if (answer.status !== 201) throw new Error(`ticket_${answer.status}`)
  return JSON.parse(answer.body).ticket
}

interface Opened {
  readonly session: Session
  /** Time from the start (before the ticket) to `subscribed`, µs. */
  readonly tookUs: number
  readonly resumed: boolean
}

const open = async (
  target: Target,
  role: "patient" | "clinician",
  ref: string,
  channel: string,
  local: string,
  options: { readonly wsAgent?: Agent; readonly onMessage?: (data: Buffer) => void } = {}
): Promise<Opened> => {
  const started = nowUs()
  const protocols = ["tidings.v1"]
  if (target.kind === "tidings") protocols.push(`ticket.${await ticketFor(target, role, ref, ticketAgent(target, local))}`)
  return new Promise<Opened>((resolve, reject) => {
    const ws = new WebSocket(`wss://${target.host}:${target.port}/v1/ws`, protocols, {
      origin: target.origin,
      secureContext: secureContext(target.ca),
      localAddress: local,
      perMessageDeflate: false,
      skipUTF8Validation: true,
      handshakeTimeout: 30_000,
      ...(options.wsAgent === undefined ? {} : { agent: options.wsAgent })
    } as any)
    const session: Session = { ws, channel, lastPing: Date.now(), pings: 0 }
    let settled = false
    let resumed = false
    const fail = (reason: string) => {
      if (settled) return
      settled = true
      ws.terminate()
      reject(new Error(reason))
    }
    const timer = setTimeout(() => fail("timeout"), 30_000)
    ws.on("upgrade", (res) => {
      const socket = res.socket as TLSSocket
      resumed = socket.isSessionReused()
      if (tlsSeen === undefined) {
        const group = (socket.getEphemeralKeyInfo() as { name?: string } | null)?.name
        tlsSeen = { protocol: socket.getProtocol(), group }
      }
    })
    ws.on("unexpected-response", (_req, res) => {
      res.resume()
      fail(`ws_${res.statusCode}`)
    })
    ws.on("error", (error: NodeJS.ErrnoException) => fail(`ws_${error.code ?? "error"}`))
    ws.on("ping", () => {
      session.lastPing = Date.now()
      session.pings += 1
    })
    ws.once("close", (code) => {
      clearTimeout(timer)
      if (!settled) return fail(`close_${code}`)
      if (sessions.delete(session)) tally(closes, String(code))
    })
    ws.once("open", () => ws.send(JSON.stringify({ type: "subscribe", id: "s1", channel })))
    ws.on("message", (data: Buffer) => {
      if (settled) {
        if (options.onMessage !== undefined) return options.onMessage(data)
        if (onEvent(data)) return
        return
      }
      const frame = JSON.parse(data.toString())
      if (frame.type === "subscribed") {
        settled = true
        clearTimeout(timer)
        resolve({ session, tookUs: nowUs() - started, resumed })
      } else if (frame.type === "error") {
        fail(`error_${frame.code}`)
      }
    })
  })
}

const refOf = (prefix: string, kind: string, i: number) => `${prefix}${kind}${String(i).padStart(6, "0")}`

/** The user and channel of connection `i` of a layout (the orchestrator makes the same names). */
export const layoutOf = (args: Pick<OpenArgs, "prefix" | "layout" | "channels">, i: number) =>
  args.layout === "own"
    ? { role: "patient" as const, ref: refOf(args.prefix, "p", i), channel: `patient:${refOf(args.prefix, "p", i)}` }
    : { role: "clinician" as const, ref: refOf(args.prefix, "c", i), channel: `patient:${refOf(args.prefix, "p", i % args.channels!)}` }

const openMany = async (args: OpenArgs) => {
  const failures = new Map<string, number>()
  const took = new Histogram()
  let opened = 0
  let next = args.from
  const end = args.from + args.count
  const started = Date.now()
  const progress = setInterval(() => note({ kind: "open", opened, failed: sum(failures), count: args.count }), 1_000)
  const worker = async () => {
    while (next < end) {
      const i = next++
      const { role, ref, channel } = layoutOf(args, i)
      try {
        const result = await open(args.target, role, ref, channel, sourceAddress(i * 7 + setup!.worker, setup!.spread))
        sessions.add(result.session)
        took.record(result.tookUs)
        opened += 1
      } catch (error) {
        tally(failures, (error as Error).message)
      }
    }
  }
  await Promise.all(Array.from({ length: args.concurrency }, worker))
  clearInterval(progress)
  return { opened, failures: Object.fromEntries(failures), seconds: (Date.now() - started) / 1000, took: took.toJSON(), tls: tlsSeen }
}

const sum = (map: Map<string, number>) => [...map.values()].reduce((a, b) => a + b, 0)

// ---------------------------------------------------------------------------------------------
// Churn: `concurrency` loops of ticket + connect + subscribe + first event + close.

interface ChurnArgs {
  readonly target: Target
  readonly prefix: string
  readonly concurrency: number
  readonly durationMs: number
  readonly tag: string
}

const churn = async (args: ChurnArgs) => {
  bus ??= await connectBus(setup!.redisUrl)
  const firstEvent = new Histogram()
  const failures = new Map<string, number>()
  let completed = 0
  let resumed = 0
  const started = Date.now()
  const deadline = started + args.durationMs
  const progress = setInterval(() => note({ kind: "churn", completed, failed: sum(failures) }), 1_000)
  const loop = async (loopIndex: number) => {
    const local = sourceAddress(loopIndex * 13 + setup!.worker, setup!.spread)
    // One browser: its API connection is kept alive, and its TLS session is resumed on reconnect.
    const wsAgent = new Agent({ keepAlive: false, maxCachedSessions: 4, localAddress: local, secureContext: secureContext(args.target.ca) } as any)
    let n = 0
    while (Date.now() < deadline) {
      const ref = `${args.prefix}l${loopIndex}_${n++}`
      const channel = `patient:${ref}`
      const start = nowUs()
      let gotEvent: (() => void) | undefined
      const event = new Promise<void>((resolve) => (gotEvent = resolve))
      try {
        const opened = await open(args.target, "patient", ref, channel, local, {
          wsAgent,
          onMessage: (data) => {
            if (data.indexOf(`c${args.tag}_`) >= 0) gotEvent!()
          }
        })
        if (opened.resumed) resumed += 1
        const closed = new Promise<void>((resolve) => opened.session.ws.once("close", () => resolve()))
        await bus!.publish(channel, `c${args.tag}_${start}_${n}`, "appointment.updated", "ref_bench0001", "bench", args.target.kind === "tidings")
        const timeout = sleep(10_000).then(() => "timeout")
        if ((await Promise.race([event, timeout])) === "timeout") {
          opened.session.ws.terminate()
          tally(failures, "no_event")
          continue
        }
        firstEvent.record(nowUs() - start)
        opened.session.ws.close(1000)
        await Promise.race([closed, sleep(5_000)])
        completed += 1
      } catch (error) {
        tally(failures, (error as Error).message)
      }
    }
    wsAgent.destroy()
  }
  await Promise.all(Array.from({ length: args.concurrency }, (_, i) => loop(i)))
  clearInterval(progress)
  const seconds = (Date.now() - started) / 1000
  return { completed, resumed, seconds, failures: Object.fromEntries(failures), firstEvent: firstEvent.toJSON() }
}

// ---------------------------------------------------------------------------------------------

serve({
  setup: (args: Setup) => {
    setup = args
    sign = makeSigner(args.issuer)
    return { pid: process.pid }
  },
  open: (args: OpenArgs) => openMany(args),
  /** Events received so far per tag (to see when delivery has drained). */
  counts: () => Object.fromEntries([...byTag].map(([tag, entry]) => [tag, entry.count])),
  /** Takes (and forgets) the latency histograms of these tags. */
  collect: (args: { readonly tags: ReadonlyArray<string> }) => {
    const out: Record<string, { count: number; hist: ReturnType<Histogram["toJSON"]> }> = {}
    for (const tag of args.tags) {
      const entry = byTag.get(tag)
      out[tag] = entry === undefined ? { count: 0, hist: new Histogram().toJSON() } : { count: entry.count, hist: entry.hist.toJSON() }
      byTag.delete(tag)
    }
    return out
  },
  /** Open sessions, closes seen by code, and how many have had no ping for `staleMs`. */
  status: (args: { readonly staleMs?: number }) => {
    const now = Date.now()
    let stale = 0
    let pings = 0
    for (const session of sessions) {
      pings += session.pings
      if (args.staleMs !== undefined && now - session.lastPing > args.staleMs) stale += 1
    }
    return { open: sessions.size, closes: Object.fromEntries(closes), stale, pings }
  },
  churn: (args: ChurnArgs) => churn(args),
  closeAll: async () => {
    const all = [...sessions]
    sessions.clear()
    await Promise.race([
      Promise.all(all.map((s) => new Promise<void>((resolve) => {
        if (s.ws.readyState === WebSocket.CLOSED) return resolve()
        s.ws.once("close", () => resolve())
        s.ws.close(1000)
      }))),
      sleep(5_000)
    ])
    for (const s of all) if (s.ws.readyState !== WebSocket.CLOSED) s.ws.terminate()
    for (const agent of ticketAgents.values()) agent.destroy()
    ticketAgents.clear()
    closes.clear()
    byTag.clear()
    return { closed: all.length }
  }
})
