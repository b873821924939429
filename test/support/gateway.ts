// A real Tidings node for end-to-end tests: the production composition (App.layer) on a free
// loopback port, with its own certificate and ticket key files, audit kept in memory so
// tests can read it, and helpers that speak HTTPS and wss:// to it like an app would.
import { Context, Effect, Exit, Layer, Result, Scope } from "effect"
import { generateKeyPairSync } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { Agent, request } from "node:https"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { WebSocket, type ClientOptions } from "ws"
import * as App from "../../src/App.ts"
import * as Config from "../../src/Config.ts"
import type { AuditRecord } from "../../src/interpreters/audit/Chain.ts"
import { MemoryAuditRecords } from "../../src/interpreters/memory/AuditLog.ts"
import { Refusals } from "../../src/programs/Refusals.ts"
import { makeSelfSigned } from "../../src/server/SelfSigned.ts"
import { frameLog } from "./frames.ts"
import { withDataKey } from "./data-key.ts"
import { freePort } from "./net.ts"

export const ORIGIN = "https://app.example.test"

export interface Reply {
  readonly status: number
  readonly headers: Record<string, string | Array<string> | undefined>
  readonly body: string
  json<T = any>(): T
}

export interface Gateway {
  readonly base: string
  readonly wsUrl: string
  readonly ca: string
  readonly ticketKeyPem: string
  /** Every audit record so far, after writing what is buffered (pending refusal counts too). */
  readonly audit: () => Promise<ReadonlyArray<AuditRecord>>
  /** While true the audit sink refuses every write, as a full disk would. */
  readonly failAuditWrites: (failing: boolean) => void
  readonly http: (method: string, path: string, options?: { body?: string; headers?: Record<string, string> }) => Promise<Reply>
  readonly token: (role: "patient" | "clinician" | "admin" | "service", ref: string) => Promise<string>
  readonly ticket: (role: "patient" | "clinician", ref: string) => Promise<string>
  readonly publish: (service: string, body: Record<string, unknown>) => Promise<Reply>
  /** `POST /v1/events/batch` with `{"events": events}`. */
  readonly publishBatch: (service: string, events: ReadonlyArray<unknown>) => Promise<Reply>
  readonly connect: (options?: ConnectOptions) => Promise<Connected>
  readonly close: () => Promise<void>
}

export interface ConnectOptions {
  readonly ticket?: string | undefined
  readonly origin?: string | null
  readonly protocols?: ReadonlyArray<string>
  readonly ws?: ClientOptions
}

export type Connected =
  | { readonly kind: "open"; readonly ws: WebSocket; readonly client: Client }
  | { readonly kind: "rejected"; readonly status: number }
  | { readonly kind: "error"; readonly message: string }

/** A WebSocket client that keeps every frame and its close, for assertions. */
export interface Client {
  readonly frames: Array<any>
  readonly closed: Promise<{ readonly code: number; readonly reason: string }>
  readonly send: (message: unknown) => void
  /** Resolves with the first frame (seen or future) that matches. */
  readonly next: (match: (frame: any) => boolean, timeoutMs?: number) => Promise<any>
}

const client = (ws: WebSocket): Client => {
  const log = frameLog()
  ws.on("message", (data) => log.push(JSON.parse(data.toString())))
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() }))
  )
  return {
    frames: log.frames,
    closed,
    send: (message) => ws.send(typeof message === "string" ? message : JSON.stringify(message)),
    next: log.next
  }
}

/** A ticket signing key, for nodes that must share one (as every node of a gateway does). */
export const makeTicketKey = (): string =>
  generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString()

export const startGateway = async (
  env: Record<string, string> = {},
  options: { readonly ticketKeyPem?: string; readonly auditBufferLimit?: number } = {}
): Promise<Gateway> => {
  const dir = mkdtempSync(join(tmpdir(), "tidings-e2e-"))
  const tls = makeSelfSigned({ hosts: ["localhost", "127.0.0.1"], days: 1 })
  const ticketKeyPem = options.ticketKeyPem ?? makeTicketKey()
  writeFileSync(join(dir, "cert.pem"), tls.cert)
  writeFileSync(join(dir, "key.pem"), tls.key)
  writeFileSync(join(dir, "ticket.pem"), ticketKeyPem)
  const port = await freePort()
  const parsed = Config.parse({
    TIDINGS_LISTEN: `127.0.0.1:${port}`,
    TIDINGS_TLS_CERT_FILE: join(dir, "cert.pem"),
    TIDINGS_TLS_KEY_FILE: join(dir, "key.pem"),
    TIDINGS_TICKET_KEY_FILE: join(dir, "ticket.pem"),
    TIDINGS_ALLOWED_ORIGINS: ORIGIN,
    TIDINGS_AUDIT_SINK: `file:${join(dir, "audit")}`,
    // Its own metrics port, so gateways started side by side do not contend for the default.
    TIDINGS_METRICS_LISTEN: `127.0.0.1:${await freePort()}`,
    ...withDataKey(env)
  })
  if (Result.isFailure(parsed)) throw new Error(`config: ${parsed.failure.setting} ${parsed.failure.problem}`)
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(
    Layer.buildWithScope(
      App.layer(parsed.success, {
        audit: "memory",
        ...(options.auditBufferLimit === undefined ? {} : { auditBufferLimit: options.auditBufferLimit })
      }),
      scope
    )
  )
  const records = Context.getUnsafe(context as Context.Context<MemoryAuditRecords>, MemoryAuditRecords)
  const refusals = Context.getUnsafe(context as Context.Context<Refusals>, Refusals)
  const base = `https://localhost:${port}`
  // Kept alive like a real backend's client, so a thousand publishes are not a thousand handshakes.
  const agent = new Agent({ keepAlive: true, ca: tls.cert, maxSockets: 8 })

  const http: Gateway["http"] = (method, path, options = {}) =>
    new Promise((resolve, reject) => {
      const req = request(new URL(path, base), { method, ca: tls.cert, agent, headers: options.headers ?? {} }, (res) => {
        let body = ""
        res.setEncoding("utf8")
        res.on("data", (chunk: string) => (body += chunk))
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) }))
      })
      req.on("error", reject)
      req.end(options.body)
    })

  const json = (method: string, path: string, body: unknown, token?: string) =>
    http(method, path, {
      body: JSON.stringify(body),
      headers: { "content-type": "application/json", ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) }
    })

  const token: Gateway["token"] = async (role, ref) => {
    const reply = await json("POST", "/dev/token", { role, ref })
    if (reply.status !== 200) throw new Error(`dev token: ${reply.status}`)
    return reply.json().accessToken
  }

  const serviceTokens = new Map<string, Promise<string>>()
  const serviceToken = (service: string) => {
    if (!serviceTokens.has(service)) serviceTokens.set(service, token("service", service))
    return serviceTokens.get(service)!
  }

  return {
    base,
    wsUrl: `wss://localhost:${port}/v1/ws`,
    ca: tls.cert,
    ticketKeyPem,
    audit: () => Effect.runPromise(Effect.andThen(refusals.flush, records.all)),
    failAuditWrites: records.failWrites,
    http,
    token,
    ticket: async (role, ref) => {
      const reply = await json("POST", "/v1/tickets", {}, await token(role, ref))
      if (reply.status !== 201) throw new Error(`ticket: ${reply.status} ${reply.body}`)
      return reply.json().ticket
    },
    publish: async (service, body) => json("POST", "/v1/events", body, await serviceToken(service)),
    publishBatch: async (service, events) => json("POST", "/v1/events/batch", { events }, await serviceToken(service)),
    connect: (options = {}) =>
      new Promise((resolve) => {
        const protocols = options.protocols ?? ["tidings.v1", ...(options.ticket === undefined ? [] : [`ticket.${options.ticket}`])]
        const origin = options.origin === undefined ? ORIGIN : options.origin
        const ws = new WebSocket(`wss://localhost:${port}/v1/ws`, [...protocols], {
          ca: tls.cert,
          ...(origin === null ? {} : { origin }),
          ...options.ws
        })
        const c = client(ws)
        ws.once("open", () => resolve({ kind: "open", ws, client: c }))
        ws.once("unexpected-response", (_req, res) => {
          resolve({ kind: "rejected", status: res.statusCode ?? 0 })
          res.resume()
        })
        ws.once("error", (error) => resolve({ kind: "error", message: error.message }))
      }),
    close: async () => {
      agent.destroy()
      await Effect.runPromise(Scope.close(scope, Exit.void))
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

/**
 * A patient subscribed to their channel on `gateway`, one event published there by `service`:
 * the publish's status and the frame that reached the socket (the whole path, Redis included).
 */
export const publishToSubscriber = async (gateway: Gateway, patient: string, service: string) => {
  const channel = `patient:${patient}`
  const connected = await gateway.connect({ ticket: await gateway.ticket("patient", patient) })
  if (connected.kind !== "open") throw new Error(JSON.stringify(connected))
  try {
    connected.client.send({ type: "subscribe", id: "s", channel })
    await connected.client.next((f) => f.type === "subscribed")
    const published = (await gateway.publish(service, { channel, kind: "result.available", ref: "res_through_01" })).status
    return { published, event: published === 202 ? await connected.client.next((f) => f.type === "event") : undefined }
  } finally {
    connected.ws.close()
  }
}
