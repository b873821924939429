// One run of the fault-injection suite against the real cluster: fresh refs, the sessions it
// opened, and everything the gateway acknowledged (seqs, revocations, care changes, audit
// ledger). Each step is logged and followed by the invariant checks of invariants.ts.
import { randomBytes } from "node:crypto"
import { readFileSync } from "node:fs"
import { makeChain } from "../../src/interpreters/audit/Chain.ts"
import type { AuditEvent } from "../../src/domain/Audit.ts"
import type { Channel } from "../../src/domain/Channel.ts"
import { until } from "../support/wait.ts"
import { BOUND_MS } from "./bounds.ts"
import { type SessionClient, connect } from "./client.ts"
import { type Cluster, type NodeName, NODES, type Reply } from "./cluster.ts"
import { type AuditLedger, auditKey, replay, type SessionFacts, type Subscription, Violation } from "./invariants.ts"

export type Role = "patient" | "clinician"

export interface Session {
  readonly name: string
  readonly role: Role
  readonly who: number
  readonly ref: string
  readonly node: NodeName
  readonly client: SessionClient
  readonly openedAt: number
  readonly sinces: Map<string, number | undefined>
}

/** Service and admin tokens, minted once per cluster (the dev issuer's key is shared). */
export interface Tokens {
  readonly service: string
  readonly admin: string
}

export const WHO = [0, 1] as const

export class World {
  readonly tag = randomBytes(4).toString("hex")
  readonly patients = WHO.map((i) => `pt_f${this.tag}_${i}`)
  readonly clinicians = WHO.map((i) => `cl_f${this.tag}_${i}`)
  readonly sessions: Array<Session> = []
  readonly steps: Array<string> = []
  /** Acknowledged grants not ended since: "<clinician index>|<patient index>". */
  readonly care = new Set<string>()
  readonly revocations = new Map<string, Array<number>>()
  readonly careEnds = new Map<string, Array<number>>()
  readonly careGrants = new Map<string, Array<number>>()
  /** The seq of the last acknowledged publish, per channel. */
  readonly latest = new Map<string, number>()
  readonly ledger: Record<NodeName, AuditLedger> = { a: new Map(), b: new Map() }
  /** The gateway's own record maker (with the shared audit key): pseudonyms exactly as the nodes write them. */
  private readonly record: ReturnType<typeof makeChain>
  private counter = 0
  /** Sessions whose close the step log already shows. */
  private readonly reported = new Set<string>()

  readonly cluster: Cluster
  readonly tokens: Tokens

  constructor(cluster: Cluster, tokens: Tokens) {
    this.cluster = cluster
    this.tokens = tokens
    this.record = makeChain(readFileSync(cluster.auditKeyFile), "ledger")
  }

  ref = (role: Role, who: number) => (role === "patient" ? this.patients : this.clinicians)[who]!
  channel = (role: Role, who: number) => `${role}:${this.ref(role, who)}`

  /** "patient:P1" for a channel of this run: refs in messages are test names. */
  label = (text: string) =>
    WHO.reduce((out, i) => out.replaceAll(this.patients[i]!, `P${i}`).replaceAll(this.clinicians[i]!, `C${i}`), text)

  id = (prefix: string) => `${prefix}_${this.tag}_${++this.counter}`

  open = () => this.sessions.filter((s) => s.client.closed() === undefined)

  describe = (s: Session) => `${s.name} (${s.role} ${s.role === "patient" ? "P" : "C"}${s.who} on node ${s.node})`

  /** Runs one step, then checks every invariant; a failure names the step and lists them all. */
  step = async (what: string, run: () => Promise<string | void>) => {
    this.steps.push(what)
    try {
      const outcome = await run()
      if (typeof outcome === "string" && outcome.length > 0) this.steps[this.steps.length - 1] = `${what} → ${outcome}`
      await this.check()
      const closed = this.sessions.filter((s) => s.client.closed() !== undefined && !this.reported.has(s.name))
      for (const s of closed) this.reported.add(s.name)
      if (closed.length > 0) this.steps[this.steps.length - 1] += ` [closed: ${closed.map((s) => `${s.name} ${s.client.closed()!.code}`).join(", ")}]`
    } catch (error) {
      const steps = this.steps.map((s, i) => `  ${i + 1}. ${s}`).join("\n")
      const message = error instanceof Error ? error.message : String(error)
      throw new Error(`${this.label(message)}\non step ${this.steps.length} (${this.label(what)}); steps of this run:\n${this.label(steps)}`)
    }
  }

  /** Retries on 503 or no answer (a node or Redis coming back) until one of `ok`; anything else fails. */
  acked = async (what: string, call: () => Promise<Reply>, ok: ReadonlyArray<number>): Promise<Reply> => {
    let last: Reply = { status: 0, body: undefined }
    await until(async () => {
      last = await call().catch((error: Error) => ({ status: 0, body: error.message }))
      if (ok.includes(last.status)) return true
      if (last.status === 503 || last.status === 0 || last.status === 429) return false
      throw new Error(`${what}: answered ${last.status} ${JSON.stringify(last.body)}`)
    }, BOUND_MS, `${what} acknowledged`)
    return last
  }

  /** Ledger keys (pseudonyms) → the same in test names, for messages. */
  readonly auditNames = new Map<string, string>()

  count = (node: NodeName, event: string, subject?: string, channel?: string) => {
    const [tag, ref] = (channel ?? ":").split(":") as ["patient" | "clinician", string]
    const record = this.record({ event: event as AuditEvent, ...(subject === undefined ? {} : { subject }), ...(channel === undefined ? {} : { channel: { _tag: tag, ref } as Channel }) }, 0)
    const key = auditKey(event, record.subject, record.channel)
    this.auditNames.set(key, this.label(`${event}${subject === undefined ? "" : ` subject ${subject}`}${channel === undefined ? "" : ` channel ${channel}`}`))
    this.ledger[node].set(key, (this.ledger[node].get(key) ?? 0) + 1)
  }

  facts = (s: Session): SessionFacts => {
    const careEndedAt = new Map<string, Array<number>>()
    const careGrantedAt = new Map<string, Array<number>>()
    if (s.role === "clinician") {
      for (const p of WHO) {
        careEndedAt.set(this.channel("patient", p), this.careEnds.get(`${s.who}|${p}`) ?? [])
        careGrantedAt.set(this.channel("patient", p), this.careGrants.get(`${s.who}|${p}`) ?? [])
      }
    }
    return {
      name: this.describe(s),
      role: s.role,
      sinces: s.sinces,
      revokedAt: (this.revocations.get(`${s.role}:${s.ref}`) ?? []).filter((ack) => ack >= s.openedAt),
      careEndedAt,
      careGrantedAt,
      label: this.label
    }
  }

  live = (s: Session): Map<string, Subscription> => replay(this.facts(s), s.client.received)

  /** The invariants that hold after every step (the audit ones run where nodes crash, and at the end). */
  check = async () => {
    for (const s of this.sessions) this.live(s)
    const now = Date.now()
    for (const s of this.open()) {
      const revoked = this.facts(s).revokedAt.find((ack) => now > ack + BOUND_MS)
      if (revoked !== undefined) throw new Violation("no revoked session open past BOUND_MS", `session ${this.describe(s)}`, `open ${now - revoked} ms after the revocation`)
    }
    const behind = () =>
      this.open().flatMap((s) =>
        [...this.live(s).values()].filter((sub) => sub.expected <= (this.latest.get(sub.channel) ?? 0)).map((sub) =>
          `session ${this.describe(s)}, channel ${sub.channel}: next seq ${sub.expected}, last acknowledged ${this.latest.get(sub.channel)}`
        )
      )
    await until(async () => behind().length === 0, BOUND_MS, "delivery").catch(() => {
      const late = behind()
      if (late.length > 0) throw new Violation("every acknowledged event reaches every live subscription", late.join("; "), `not within ${BOUND_MS} ms`)
    })
    for (const s of this.sessions) this.live(s)
  }

  // ---- the operations the commands run ----

  /** A ticket for a token minted after the subject's last revocation (a token of that second counts as before it). */
  ticket = async (role: Role, who: number, node: NodeName): Promise<string> => {
    const ref = this.ref(role, who)
    const gateway = this.cluster.node[node]
    const revoked = Math.max(0, ...(this.revocations.get(`${role}:${ref}`) ?? []))
    const nextSecond = (Math.floor(revoked / 1000) + 1) * 1000
    await until(async () => Date.now() >= nextSecond, 2_000, "the second after the last revocation")
    const token = (await this.acked("dev token", () => gateway.https("POST", "/dev/token", { role, ref }), [200])).body.accessToken as string
    const ticket = (await this.acked("ticket", () => gateway.https("POST", "/v1/tickets", {}, token), [201])).body.ticket as string
    this.count(node, "ticket.issued", `${role}:${ref}`)
    return ticket
  }

  /** Takes a socket that opened (or is opening) as the run's next session. */
  adopt = (role: Role, who: number, node: NodeName, client: SessionClient, openedAt: number): Session => {
    const session: Session = {
      name: `S${this.sessions.length + 1}`, role, who, ref: this.ref(role, who), node, client, openedAt, sinces: new Map()
    }
    this.sessions.push(session)
    return session
  }

  openSession = async (role: Role, who: number, node: NodeName): Promise<string> => {
    let opened: SessionClient | undefined
    let refusal = ""
    await until(async () => {
      const client = await connect(this.cluster.node[node].port, this.cluster.ca, await this.ticket(role, who, node))
      client.send({ type: "ping", id: "hello" })
      const answer = await Promise.race([client.next((f) => f.type === "pong"), client.whenClosed]).catch(() => undefined)
      if (answer !== undefined && client.closed() === undefined) return (opened = client, true)
      refusal = `closed ${client.closed()?.code ?? "?"}`
      // 4503: a backing service did not answer while it opened (Redis coming back); try again.
      if (client.closed()?.code === 4503 || answer === undefined) return false
      throw new Violation("a fresh ticket opens a session", `${role} ${this.label(this.ref(role, who))} on node ${node}`, refusal)
    }, BOUND_MS, `a session opens (${refusal})`)
    return this.adopt(role, who, node, opened!, Date.now()).name
  }

  /** Subscribes; `since` is the last seq this session saw on the channel, if it held it before. */
  subscribe = async (s: Session, channel: string, racing = false): Promise<string> => {
    const seen = s.client.received.filter((r) => r.frame.channel === channel && typeof r.frame.seq === "number")
    const since = seen.length === 0 ? undefined : Math.max(...seen.map((r) => r.frame.seq as number))
    const id = this.id("sub")
    s.sinces.set(id, since)
    s.client.send({ type: "subscribe", id, channel, ...(since === undefined ? {} : { since }) })
    const answer = await this.answer(s, id, "subscribe")
    if (answer === undefined) return `closed ${s.client.closed()?.code}`
    const [role, ref] = channel.split(":") as [Role, string]
    const allowed = role === s.role ? ref === s.ref : s.role === "clinician" && this.care.has(`${s.who}|${this.patients.indexOf(ref)}`)
    const outcome = answer.type === "subscribed" ? `subscribed seq ${answer.seq} recovered ${answer.recovered}` : `error ${answer.code}`
    if ((answer.type === "error" && answer.code === "unavailable") || racing) return outcome
    if (allowed !== (answer.type === "subscribed")) {
      throw new Violation("subscribe answers follow the acknowledged care relationships", `session ${this.describe(s)}, channel ${channel}`,
        `expected ${allowed ? "subscribed" : "forbidden"}, got ${outcome}`)
    }
    return outcome
  }

  unsubscribe = async (s: Session, channel: string) => {
    const id = this.id("uns")
    s.client.send({ type: "unsubscribe", id, channel })
    await this.answer(s, id, "unsubscribe")
  }

  /** The frame answering request `id`, or undefined if the socket closed first. */
  private answer = (s: Session, id: string, what: string): Promise<any> =>
    Promise.race([s.client.next((f) => f.id === id, BOUND_MS), s.client.whenClosed.then(() => undefined)]).catch(() => {
      throw new Violation("every subscribe and unsubscribe is answered", `session ${this.describe(s)}`, `no answer to ${what} ${id} within ${BOUND_MS} ms`)
    })

  publish = async (node: NodeName, channel: string): Promise<string> => {
    const body = { channel, kind: "task.assigned", ref: this.id("tsk"), id: this.id("evt") }
    const reply = await this.acked("publish", () => this.cluster.node[node].https("POST", "/v1/events", body, this.tokens.service), [202])
    this.count(node, "event.published", undefined, channel)
    const previous = this.latest.get(channel) ?? 0
    this.latest.set(channel, reply.body.seq)
    if (reply.body.seq !== previous + 1) {
      throw new Violation("publish seqs are consecutive per channel", `channel ${channel}`, `acknowledged seq ${reply.body.seq} after ${previous}`)
    }
    return `seq ${reply.body.seq}`
  }

  revoke = async (node: NodeName, role: Role, who: number) => {
    const ref = this.ref(role, who)
    const concerned = this.open().filter((s) => s.role === role && s.ref === ref)
    await this.acked("revocation", () => this.cluster.node[node].https("POST", "/v1/admin/revocations", { subject: ref, role }, this.tokens.admin), [202])
    const ack = Date.now()
    this.revocations.set(`${role}:${ref}`, [...(this.revocations.get(`${role}:${ref}`) ?? []), ack])
    this.count(node, "session.revoked", `${role}:${ref}`)
    const stillOpen = () => concerned.filter((s) => s.client.closed() === undefined)
    await until(async () => stillOpen().length === 0, BOUND_MS, "revoked sessions close").catch(() => {
      throw new Violation("no revoked session open past BOUND_MS", stillOpen().map((s) => `session ${this.describe(s)}`).join(", "),
        `still open ${Date.now() - ack} ms after the revocation was acknowledged`)
    })
    return concerned.map((s) => `${s.name} closed ${s.client.closed()!.code}`).join(", ")
  }

  grant = async (node: NodeName, c: number, p: number) => {
    const body = { clinician: this.clinicians[c], patient: this.patients[p] }
    await this.acked("care grant", () => this.cluster.node[node].https("PUT", "/v1/care-relationships", body, this.tokens.service), [204])
    this.care.add(`${c}|${p}`)
    this.careGrants.set(`${c}|${p}`, [...(this.careGrants.get(`${c}|${p}`) ?? []), Date.now()])
    this.count(node, "relationship.granted", `clinician:${body.clinician}`, `patient:${body.patient}`)
  }

  end = async (node: NodeName, c: number, p: number) => {
    const body = { clinician: this.clinicians[c]!, patient: this.patients[p]! }
    const channel = `patient:${body.patient}`
    const holding = () => this.open().filter((s) => s.role === "clinician" && s.who === c && this.live(s).has(channel))
    const concerned = holding()
    await this.acked("care end", () => this.cluster.node[node].https("DELETE", "/v1/care-relationships", body, this.tokens.service), [204])
    const ack = Date.now()
    this.care.delete(`${c}|${p}`)
    this.careEnds.set(`${c}|${p}`, [...(this.careEnds.get(`${c}|${p}`) ?? []), ack])
    this.count(node, "relationship.ended", `clinician:${body.clinician}`, `patient:${body.patient}`)
    await until(async () => holding().length === 0, BOUND_MS, "care end signalled").catch(() => {
      throw new Violation("a care end removes the subscription within BOUND_MS", holding().map((s) => `session ${this.describe(s)}, channel ${channel}`).join("; "),
        `no error frame nor close ${Date.now() - ack} ms after the care end was acknowledged`)
    })
    return concerned.length === 0 ? undefined : `${concerned.map((s) => `${s.name} ${s.client.closed() === undefined ? "got the error frame" : "closed"}`).join(", ")}`
  }

  nodesReady = async () => {
    for (const name of NODES) {
      await until(async () => (await this.cluster.node[name].https("GET", "/readyz").catch(() => ({ status: 0 }))).status === 200,
        BOUND_MS, `node ${name} ready again`)
    }
  }
}

