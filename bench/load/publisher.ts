// Load generator, publishing side (its own child process): events at a fixed rate, either as a
// service would send them (POST /v1/events over kept-alive HTTPS, or POST /v1/events/batch
// with `batchSize` events a request) or straight into the bus (the Redis publish script). Open
// loop: event n is due at start + n/rate, and that due time — not the moment it finally went
// out — is written into its id, so a server that falls behind shows it as latency (no
// coordinated omission); a batch goes when its last event is due, and its events carry that
// time (what a service waits to fill a batch is its own choice, not the gateway's latency).
// Beyond `maxOutstanding` unanswered publishes the rest of the step is dropped and counted:
// the step was not held.
import { Agent, request } from "node:https"
import { createSecureContext } from "node:tls"
import { ECDH_CURVES } from "../../src/server/Tls.ts"
import { connectBus, type Bus } from "../lib/bus.ts"
import { nowUs, sleep } from "../lib/clock.ts"
import { Histogram } from "../lib/hist.ts"
import { note, serve } from "../lib/rpc.ts"

export interface HttpTarget {
  readonly host: string
  readonly port: number
  readonly ca: string
  /** Bearer token of a service (Tidings); none for the floor. */
  readonly token?: string
}

interface RunArgs {
  readonly mode: "http" | "bus" | "batch"
  /** Bus mode: publish as a Tidings node would (names and seals), else as the floor. */
  readonly sealed: boolean
  readonly target?: HttpTarget
  /** Events per POST /v1/events/batch (mode batch). */
  readonly batchSize?: number
  readonly tag: string
  readonly rate: number
  readonly durationMs: number
  readonly channels: ReadonlyArray<string>
  readonly maxOutstanding: number
}

let redisUrl = ""
let bus: Bus | undefined
const agents = new Map<string, Agent>()

const agentFor = (target: HttpTarget) => {
  const key = `${target.host}:${target.port}`
  let agent = agents.get(key)
  if (agent === undefined) {
    agent = new Agent({
      keepAlive: true, maxSockets: 64, maxFreeSockets: 64,
      secureContext: createSecureContext({ ca: target.ca, ecdhCurve: ECDH_CURVES })
    } as any)
    agents.set(key, agent)
  }
  return agent
}

const post = (target: HttpTarget, agent: Agent, method: string, path: string, body: unknown): Promise<number> =>
  exchange(target, agent, method, path, body, false).then((reply) => reply.status)

/** The status, and the body when asked for (a batch's per-event results). */
const exchange = (target: HttpTarget, agent: Agent, method: string, path: string, body: unknown, read: boolean) =>
  new Promise<{ status: number; body: string }>((resolve) => {
    const text = JSON.stringify(body)
    const req = request({
      host: target.host, port: target.port, method, path, agent,
      headers: {
        "content-type": "application/json",
        "content-length": String(Buffer.byteLength(text)),
        ...(target.token === undefined ? {} : { authorization: `Bearer ${target.token}` })
      }
    }, (res) => {
      let text = ""
      if (read) res.setEncoding("utf8").on("data", (chunk: string) => (text += chunk))
      else res.resume()
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }))
    })
    req.on("error", () => resolve({ status: 0, body: "" }))
    req.end(text)
  })

const run = async (args: RunArgs) => {
  if (args.mode === "bus") bus ??= await connectBus(redisUrl)
  const agent = args.target === undefined ? undefined : agentFor(args.target)
  const total = Math.round((args.rate * args.durationMs) / 1000)
  const answered = new Histogram()
  const failures = new Map<string, number>()
  let accepted = 0
  let dropped = 0
  let outstanding = 0
  let sent = 0
  const start = nowUs()
  const batchSize = args.mode === "batch" ? (args.batchSize ?? 50) : 1
  /** Events from..from+count-1 in one POST /v1/events/batch, all carrying the last one's due time. */
  const sendBatch = (from: number, count: number) => {
    const due = Math.round(start + ((from + count - 1) * 1e6) / args.rate)
    const events = Array.from({ length: count }, (_, i) => ({
      channel: args.channels[(from + i) % args.channels.length]!,
      kind: "appointment.updated",
      ref: "ref_bench0001",
      id: `b${args.tag}_${due}_${from + i}`
    }))
    outstanding += count
    void exchange(args.target!, agent!, "POST", "/v1/events/batch", { events }, true).then((reply) => {
      outstanding -= count
      const elapsed = nowUs() - due
      const results: ReadonlyArray<{ seq?: number; error?: string }> | undefined = reply.status === 200
        ? JSON.parse(reply.body).results
        : undefined
      for (let i = 0; i < count; i++) {
        answered.record(elapsed)
        const result = results?.[i]
        if (result?.seq !== undefined) accepted += 1
        else {
          const reason = result?.error ?? String(reply.status)
          failures.set(reason, (failures.get(reason) ?? 0) + 1)
        }
      }
    })
  }
  const send = (n: number) => {
    const due = Math.round(start + (n * 1e6) / args.rate)
    const id = `b${args.tag}_${due}_${n}`
    const channel = args.channels[n % args.channels.length]!
    outstanding += 1
    const done = (ok: boolean, reason: string) => {
      outstanding -= 1
      answered.record(nowUs() - due)
      if (ok) accepted += 1
      else failures.set(reason, (failures.get(reason) ?? 0) + 1)
    }
    if (args.mode === "bus") {
      bus!.publish(channel, id, "appointment.updated", "ref_bench0001", "bench", args.sealed).then(() => done(true, ""), () => done(false, "redis"))
    } else {
      post(args.target!, agent!, "POST", "/v1/events", { channel, kind: "appointment.updated", ref: "ref_bench0001", id })
        .then((status) => done(status === 202, String(status)))
    }
  }
  const progress = setInterval(() => note({ kind: "publish", tag: args.tag, sent, accepted, dropped }), 1_000)
  while (sent < total) {
    const due = Math.min(total, Math.floor(((nowUs() - start) * args.rate) / 1e6) + 1)
    if (batchSize > 1) {
      // Whole batches only, but for the step's last, shorter one.
      while (sent < due && (due - sent >= batchSize || due === total)) {
        const count = Math.min(batchSize, total - sent)
        if (outstanding >= args.maxOutstanding) dropped += count
        else sendBatch(sent, count)
        sent += count
      }
    }
    while (batchSize === 1 && sent < due) {
      if (outstanding >= args.maxOutstanding) dropped += 1
      else send(sent)
      sent += 1
    }
    // Past the due ones: yield to the I/O (answers), then come back within about a millisecond.
    // A batch waits for its last event's due time: no spinning meanwhile.
    await (sent >= due || batchSize > 1 ? sleep(1) : new Promise((resolve) => setImmediate(resolve)))
  }
  const sendSeconds = (nowUs() - start) / 1e6
  // Wait for the answers still out (bounded).
  const waitUntil = Date.now() + 15_000
  while (outstanding > 0 && Date.now() < waitUntil) await sleep(20)
  clearInterval(progress)
  return {
    tag: args.tag, mode: args.mode, rate: args.rate, total, accepted, dropped, unanswered: outstanding,
    failures: Object.fromEntries(failures), sendSeconds, answered: answered.toJSON()
  }
}

serve({
  setup: (args: { readonly redisUrl: string }) => {
    redisUrl = args.redisUrl
    return { pid: process.pid }
  },
  run,
  /** PUT /v1/care-relationships for each (clinician, patient) pair, `concurrency` at a time. */
  care: async (args: { readonly target: HttpTarget; readonly pairs: ReadonlyArray<readonly [string, string]>; readonly concurrency: number }) => {
    const agent = agentFor(args.target)
    const failures = new Map<string, number>()
    let next = 0
    let ok = 0
    await Promise.all(Array.from({ length: args.concurrency }, async () => {
      while (next < args.pairs.length) {
        const [clinician, patient] = args.pairs[next++]!
        const status = await post(args.target, agent, "PUT", "/v1/care-relationships", { clinician, patient })
        if (status === 204) ok += 1
        else failures.set(String(status), (failures.get(String(status)) ?? 0) + 1)
      }
    }))
    return { ok, failures: Object.fromEntries(failures) }
  },
  reset: () => {
    for (const agent of agents.values()) agent.destroy()
    agents.clear()
    return {}
  }
})
