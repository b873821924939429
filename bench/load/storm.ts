// Load generator for S6, the reconnect storm (a child process of bench/run.ts). Each session is
// one device: for Tidings the real @tidings/client (client/src) with its backoff, its close
// table and its resume from positions; for the floor the nearest equivalent (the SDK's backoff
// function and a resubscribe after every reconnect). A tap on each socket records what S6 judges.
import { Agent } from "node:https"
import { createSecureContext, type SecureContext } from "node:tls"
import { WebSocket } from "ws"
import { delayMs } from "../../client/src/backoff.ts"
import { createClient, TicketError } from "../../client/src/index.ts"
import type { SocketFactory } from "../../client/src/types.ts"
import { ECDH_CURVES } from "../../src/server/Tls.ts"
import { nowUs, sleep } from "../lib/clock.ts"
import { type IssuerKey, makeSigner } from "../lib/jwt.ts"
import { sourceAddress } from "../lib/net.ts"
import { postTicket } from "../lib/tickets.ts"
import { serve } from "../lib/rpc.ts"
import { stormChannel } from "../scenarios/s6.ts"
import type { Target } from "./clients.ts"

export interface StormOpen {
  readonly target: Target
  readonly prefix: string
  readonly from: number
  readonly count: number
  readonly concurrency: number
}

interface Session {
  readonly i: number
  readonly channel: string
  /** nowUs of the last `subscribed`, and whether it said `recovered` (Tidings). */
  subscribedAt: number
  recovered: boolean
  subscribes: number
  /** What the app's handler saw: Tidings' onEvent (after the SDK's dedupe), the floor's raw events. */
  readonly events: Array<{ readonly seq: number; readonly id: string }>
  resets: number
  readonly errors: Array<string>
  /** The SDK gave up (state `stopped`): its detail. */
  stopped: string | undefined
  /** Floor: events between its last one and the seq a resubscribe reported (it has no history). */
  gap: number
  firstSubscribed: (() => void) | undefined
  close: () => void
}

let sign: ReturnType<typeof makeSigner> | undefined
let spread = 200
let workerNo = 0
const sessions: Array<Session> = []
/** Since the last `mark`: ticket answers, upgrade errors and closes, by cause; connect attempts. */
const fresh = () => ({
  tickets: new Map<string, number>(), upgrades: new Map<string, number>(), closes: new Map<string, number>(), attempts: 0,
  /** Round trips of the tickets granted (request → 201), and sockets (new → `subscribed`), ms. */
  ticketMs: [] as Array<number>, socketMs: [] as Array<number>, firstTicketUs: 0,
  /** When the first and the last 1001 arrived (the old node's drain). */
  first1001Us: 0, last1001Us: 0
})
let tallies = fresh()
const tally = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1)
const contexts = new Map<string, SecureContext>()
const contextFor = (ca: string) => {
  let context = contexts.get(ca)
  if (context === undefined) contexts.set(ca, (context = createSecureContext({ ca, ecdhCurve: ECDH_CURVES })))
  return context
}

/** An error's cause without addresses or ports, e.g. `ECONNREFUSED`, `Unexpected server response: 503`. */
const causeOf = (error: Error) => (error as NodeJS.ErrnoException).code ?? error.message.replace(/\s*\d+\.\d+\.\d+\.\d+:\d+/, "")

const socketOptions = (target: Target, local: string) => ({
  origin: target.origin,
  secureContext: contextFor(target.ca),
  localAddress: local,
  perMessageDeflate: false,
  skipUTF8Validation: true,
  // As S1: a browser gives up on a connect at some point; 30 s is longer than Tidings' own 10 s.
  handshakeTimeout: 30_000
})

const SUBSCRIBED = '{"type":"subscribed"'

/** What every socket of a session reports, whoever drives it. */
const tap = (ws: WebSocket, s: Session) => {
  const born = nowUs()
  ws.on("error", (error) => tally(tallies.upgrades, causeOf(error)))
  ws.on("close", (code) => {
    tally(tallies.closes, String(code))
    if (code !== 1001) return
    tallies.last1001Us = nowUs()
    if (tallies.first1001Us === 0) tallies.first1001Us = tallies.last1001Us
  })
  ws.on("message", (data: Buffer) => {
    if (data.toString("latin1", 0, SUBSCRIBED.length) !== SUBSCRIBED) return
    const frame = JSON.parse(data.toString())
    s.subscribedAt = nowUs()
    tallies.socketMs.push((s.subscribedAt - born) / 1000)
    s.recovered = frame.recovered === true
    s.subscribes += 1
    s.firstSubscribed?.()
    s.firstSubscribed = undefined
  })
}

const newSession = (i: number, channel: string): Session => ({
  i, channel, subscribedAt: 0, recovered: false, subscribes: 0, events: [], resets: 0, errors: [], stopped: undefined, gap: 0,
  firstSubscribed: undefined, close: () => undefined
})

/** POST /v1/tickets as an app's fetch: a refusal throws TicketError (the SDK acts on its status), a network error retries. */
const ticket = async (target: Target, token: string, agent: Agent): Promise<string> => {
  tallies.attempts += 1
  const asked = nowUs()
  const answer = await postTicket(target, token, agent, 30_000).catch((error: Error) => {
    tally(tallies.tickets, causeOf(error))
    throw error
  })
  tally(tallies.tickets, String(answer.status))
  if (answer.status !== 201) throw new TicketError(answer.status)
  const now = nowUs()
  tallies.ticketMs.push((now - asked) / 1000)
  if (tallies.firstTicketUs === 0) tallies.firstTicketUs = now
  return JSON.parse(answer.body).ticket
}

/** A Tidings session: the SDK, fed a ticket fetcher and a `ws` socket bound to this device's address. */
const tidings = (target: Target, s: Session, ref: string, local: string) => {
  // One device: its own kept-alive API connection, and one access token for the whole run (as
  // an app holds one until it expires; Tidings remembers it by hash, until it restarts).
  const agent = new Agent({ keepAlive: true, maxSockets: 1, localAddress: local, secureContext: contextFor(target.ca) } as any)
  const token = sign!({ role: "patient", ref }, 3_600)
  const Socket = class extends WebSocket {
    constructor(url: string, protocols: Array<string>) {
      super(url, protocols, socketOptions(target, local) as any)
      tap(this, s)
    }
  } as unknown as SocketFactory
  const client = createClient({
    url: `wss://${target.host}:${target.port}/v1/ws`, getTicket: () => ticket(target, token, agent), WebSocket: Socket, shareAcrossTabs: false
  })
  client.on("state", (state, detail) => {
    if (state === "stopped") s.stopped = `${detail?.code}_${detail?.cause ?? detail?.action}`
  })
  client.subscribe(s.channel, {
    onEvent: (event) => void s.events.push({ seq: event.seq, id: event.id }),
    onReset: () => void (s.resets += 1),
    onError: (code) => void s.errors.push(code)
  })
  s.close = () => {
    client.close()
    agent.destroy()
  }
}

/** A floor session: connect, subscribe, and on any close the SDK's backoff, then the same again. */
const floor = (target: Target, s: Session, local: string) => {
  let attempt = 0
  let closed = false
  let lastSeq = -1
  let socket: WebSocket | undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  const connect = () => {
    tallies.attempts += 1
    const ws = new WebSocket(`wss://${target.host}:${target.port}/v1/ws`, ["tidings.v1"], socketOptions(target, local) as any)
    socket = ws
    tap(ws, s)
    // The floor has no `welcome`: an open socket is the nearest to the SDK's reset of its attempts.
    ws.on("open", () => {
      attempt = 0
      ws.send(JSON.stringify({ type: "subscribe", id: "s1", channel: s.channel }))
    })
    ws.on("message", (data: Buffer) => {
      const frame = JSON.parse(data.toString())
      if (frame.type === "subscribed") {
        if (lastSeq >= 0 && frame.seq > lastSeq) s.gap += frame.seq - lastSeq
        lastSeq = Math.max(lastSeq, frame.seq)
      } else if (frame.type === "event") {
        s.events.push({ seq: frame.seq, id: frame.id })
        lastSeq = Math.max(lastSeq, frame.seq)
      }
    })
    ws.once("close", () => {
      if (closed || socket !== ws) return
      timer = setTimeout(connect, delayMs(attempt++, false))
    })
  }
  connect()
  s.close = () => {
    closed = true
    clearTimeout(timer)
    socket?.close(1000)
  }
}

/** Opens `count` sessions, `concurrency` at a time waiting for their first `subscribed` (60 s each). */
const open = async (args: StormOpen) => {
  const started = Date.now()
  let next = args.from
  let opened = 0
  let late = 0
  const worker = async () => {
    while (next < args.from + args.count) {
      const i = next++
      const s = newSession(i, stormChannel(args.prefix, i))
      const first = new Promise<void>((resolve) => (s.firstSubscribed = resolve))
      sessions.push(s)
      const local = sourceAddress(i * 7 + workerNo, spread)
      if (args.target.kind === "tidings") tidings(args.target, s, s.channel.slice("patient:".length), local)
      else floor(args.target, s, local)
      if ((await Promise.race([first.then(() => "ok"), sleep(60_000).then(() => "late")])) === "ok") opened += 1
      else late += 1
    }
  }
  await Promise.all(Array.from({ length: args.concurrency }, worker))
  return { opened, late, seconds: (Date.now() - started) / 1000, tickets: Object.fromEntries(tallies.tickets), upgrades: Object.fromEntries(tallies.upgrades) }
}

/** Sessions back since `sinceUs`: subscribed again (Tidings: with `recovered: true`). */
const progress = (args: { readonly sinceUs: number; readonly tidings: boolean }) => {
  let back = 0
  let unrecovered = 0
  let stopped = 0
  for (const s of sessions) {
    if (s.stopped !== undefined) stopped += 1
    else if (s.subscribedAt > args.sinceUs && (s.recovered || !args.tidings)) back += 1
    else if (s.subscribedAt > args.sinceUs) unrecovered += 1
  }
  return { sessions: sessions.length, back, unrecovered, stopped }
}

/**
 * The storm as this worker saw it: each session's time back (ms after `sinceUs`), and every
 * session not back, by why; the tallies since the last `mark`.
 */
const storm = (args: { readonly sinceUs: number; readonly tidings: boolean }) => {
  const backMs: Array<number> = []
  const notBack: Record<string, number> = {}
  for (const s of sessions) {
    const why = s.stopped !== undefined ? `stopped_${s.stopped}`
      : s.subscribedAt <= args.sinceUs ? "not_back"
      : args.tidings && !s.recovered ? "not_recovered"
      : undefined
    if (why === undefined) backMs.push((s.subscribedAt - args.sinceUs) / 1000)
    else notBack[why] = (notBack[why] ?? 0) + 1
  }
  return {
    ...tallies,
    backMs,
    notBack,
    tickets: Object.fromEntries(tallies.tickets),
    upgrades: Object.fromEntries(tallies.upgrades),
    closes: Object.fromEntries(tallies.closes),
    subscribeErrors: sessions.reduce((a, s) => a + s.errors.length, 0)
  }
}

/**
 * Every session's events against the ids it should have got, in order: `lost` expected and
 * missing, `duplicated` seen twice, `unordered` sessions whose seqs did not strictly rise.
 */
const verify = (args: { readonly ids: ReadonlyArray<string> }) => {
  let complete = 0
  let lost = 0
  let duplicated = 0
  let unexpected = 0
  let unordered = 0
  let resets = 0
  let gap = 0
  for (const s of sessions) {
    const want = args.ids.map((id) => `${id}_${s.i}`)
    const got = s.events.map((e) => e.id)
    const seen = new Set(got)
    const missing = want.filter((id) => !seen.has(id)).length
    lost += missing
    duplicated += got.length - seen.size
    unexpected += [...seen].filter((id) => !want.includes(id)).length
    if (s.events.some((e, k) => k > 0 && e.seq <= s.events[k - 1]!.seq)) unordered += 1
    resets += s.resets
    gap += s.gap
    if (missing === 0 && got.length === want.length) complete += 1
  }
  return { sessions: sessions.length, complete, lost, duplicated, unexpected, unordered, resets, gap }
}

serve({
  setup: (args: { readonly issuer: IssuerKey; readonly spread: number; readonly worker: number }) => {
    sign = makeSigner(args.issuer)
    spread = args.spread
    workerNo = args.worker
    return { pid: process.pid }
  },
  open: (args: StormOpen) => open(args),
  /** Zeroes the tallies: what follows is the storm. */
  mark: () => {
    tallies = fresh()
    return {}
  },
  progress,
  storm,
  /** Events received so far, all sessions together. */
  events: () => sessions.reduce((a, s) => a + s.events.length, 0),
  verify,
  closeAll: async () => {
    for (const s of sessions.splice(0)) s.close()
    await sleep(1_000)
    return {}
  }
})
