// The HTTPS routes of contract §2: read and decode the body (400 before any other work),
// authenticate, call one program, encode its answer. Every response carries the security
// headers; every error is a fixed code from domain/Close.ts and never echoes input.
import { Cause, Clock, Effect, Exit, Option, Result } from "effect"
import type { IncomingMessage, ServerResponse } from "node:http"
import type { TLSSocket } from "node:tls"
import { httpFor } from "../domain/Close.ts"
import type { Accepted } from "../domain/Event.ts"
import { BATCH_BODY_BYTES } from "../domain/Limits.ts"
import { type GatewayError, MalformedInput, NotFound, Unauthenticated } from "../domain/Errors.ts"
import { print } from "../domain/Channel.ts"
import * as Requests from "../domain/Requests.ts"
import * as Ids from "../programs/Ids.ts"
import * as Metrics from "../programs/Metrics.ts"
import * as Publish from "../programs/Publish.ts"
import * as PublishBatch from "../programs/PublishBatch.ts"
import { Refusals } from "../programs/Refusals.ts"
import * as Care from "../programs/Care.ts"
import * as Revoke from "../programs/Revoke.ts"
import * as Tickets from "../programs/Tickets.ts"
import { AccessTokens } from "../services/AccessTokens.ts"
import { DevIssuer } from "../services/DevIssuer.ts"
import { AuditLog } from "../services/AuditLog.ts"
import { Health } from "../services/Health.ts"
import { makeDemo } from "./Demo.ts"
import { isJson, readBody } from "./Body.ts"
import { SECURITY_HEADERS } from "./Headers.ts"


const CORS_PATH = "/v1/tickets"
/** Dev mode only: a page on a dev origin (a local app server) fetches its own tokens. */
const DEV_CORS_PATH = "/dev/token"
const BEARER = /^Bearer ([A-Za-z0-9_-]{1,4096}\.[A-Za-z0-9_-]{1,8192}\.[A-Za-z0-9_-]{0,4096})$/

export interface Reply {
  readonly status: number
  readonly body?: unknown
}

interface Request {
  /** Ours (the x-request-id header), for the log line of a defect. */
  readonly id: string
  readonly body: string
  readonly headers: IncomingMessage["headers"]
  /** The client's address, for per-address limits only. */
  readonly peer: string
  /** Whether the TLS client showed a certificate signed by TIDINGS_TLS_CLIENT_CA. */
  readonly certified: boolean
}

/** A route: its body decoder, then the program it calls. */
interface Route<R> {
  /** Its own body limit, when the routes' one does not fit. */
  readonly bodyBytes?: number
  readonly handle: (request: Request) => Effect.Effect<Reply, GatewayError, R>
}

const authenticate = (request: Request) =>
  Effect.gen(function*() {
    const match = BEARER.exec(request.headers.authorization ?? "")
    if (match === null) return yield* new Unauthenticated({ cause: "missing" })
    return yield* (yield* AccessTokens).verify(match[1]!, yield* Clock.currentTimeMillis)
  })

const decoded = <A>(result: Result.Result<A, MalformedInput>) =>
  Result.isSuccess(result) ? Effect.succeed(result.success) : Effect.fail(result.failure)

const body = <S extends Parameters<typeof Requests.decodeBody>[0]>(schema: S) => {
  const decode = Requests.decodeBody(schema)
  return (request: Request) => decoded(decode(request.body))
}

/** A service's caller: its bearer token, and its client certificate when the gateway demands one. */
const authenticateService = (request: Request, demandCertificate: boolean) =>
  demandCertificate && !request.certified
    ? Effect.fail(new Unauthenticated({ cause: "missing" }))
    : authenticate(request)

const ticketBody = body(Requests.TicketRequest)
const publishBody = body(Requests.PublishRequest)
const batchBody = body(Requests.PublishBatch)
const grantBody = body(Requests.CareGrant)
const endBody = body(Requests.CareEnd)
const revocationBody = body(Requests.Revocation)
const devTokenBody = body(Requests.DevTokenRequest)

/** What the routes' programs need from the environment. */
export type Requirements =
  | AccessTokens
  | Health
  | AuditLog
  | Refusals
  | Effect.Services<ReturnType<typeof Tickets.issue>>
  | Effect.Services<ReturnType<typeof Publish.publish>>
  | Effect.Services<ReturnType<typeof PublishBatch.publishBatch>>
  | Effect.Services<ReturnType<typeof Care.grantCare>>
  | Effect.Services<ReturnType<typeof Care.endCare>>
  | Effect.Services<ReturnType<typeof Revoke.revokeSubject>>

const accepted = (event: Accepted) => ({ id: event.id, channel: print(event.channel), seq: event.seq })

/**
 * One answer of a batch: what the single route would have said, its error code by the same
 * mapping (domain/Close.ts). A defect is logged like the single route's, and that item says
 * `internal`.
 */
const batchResult = (exit: Exit.Exit<Accepted, GatewayError>, onDefect: (cause: Cause.Cause<unknown>) => void) => {
  if (Exit.isSuccess(exit)) return accepted(exit.value)
  const error = Option.getOrUndefined(Cause.findErrorOption(exit.cause))
  if (error === undefined) onDefect(exit.cause)
  return { error: error === undefined ? "internal" : httpFor(error).error }
}

const routes = (dev: boolean, demandCertificate: boolean, onDefect: HttpOptions["onDefect"]) => {
  const table: Record<string, Route<Requirements>> = {
    "POST /v1/tickets": {
      handle: (request) =>
        Effect.gen(function*() {
          yield* ticketBody(request)
          const issued = yield* Tickets.issue(yield* authenticate(request), request.peer)
          return { status: 201, body: issued }
        })
    },
    "POST /v1/events": {
      handle: (request) =>
        Effect.gen(function*() {
          const event = yield* publishBody(request)
          const published = yield* Publish.publish((yield* authenticateService(request, demandCertificate)).principal, event)
          return { status: 202, body: accepted(published) }
        })
    },
    "POST /v1/events/batch": {
      bodyBytes: BATCH_BODY_BYTES,
      handle: (request) =>
        Effect.gen(function*() {
          const { events } = yield* batchBody(request)
          const principal = (yield* authenticateService(request, demandCertificate)).principal
          const exits = yield* PublishBatch.publishBatch(principal, events)
          const results = exits.map((exit) => batchResult(exit, (cause) => onDefect(cause, request.id)))
          return { status: 200, body: { results } }
        })
    },
    "PUT /v1/care-relationships": {
      handle: (request) =>
        Effect.gen(function*() {
          const grant = yield* grantBody(request)
          const untilMs = grant.until === undefined ? undefined : Date.parse(grant.until)
          yield* Care.grantCare((yield* authenticateService(request, demandCertificate)).principal, grant, untilMs)
          return { status: 204 }
        })
    },
    "DELETE /v1/care-relationships": {
      handle: (request) =>
        Effect.gen(function*() {
          const end = yield* endBody(request)
          yield* Care.endCare((yield* authenticateService(request, demandCertificate)).principal, end)
          return { status: 204 }
        })
    },
    "POST /v1/admin/revocations": {
      handle: (request) =>
        Effect.gen(function*() {
          const { subject, role } = yield* revocationBody(request)
          yield* Revoke.revokeSubject((yield* authenticate(request)).principal, subject, role)
          return { status: 202 }
        })
    },
    "GET /healthz": { handle: () => Effect.succeed({ status: 200, body: { status: "ok" } }) },
    "GET /readyz": {
      handle: () =>
        // Not ready while a backing service or the audit sink fails: the node refuses new
        // sessions and tickets then, so the balancer should send them elsewhere.
        Effect.map(
          Effect.all([Effect.flatMap(Health, (health) => health.ready), Effect.flatMap(AuditLog, (audit) => audit.ready)]),
          ([backends, audit]) =>
            backends && audit ? { status: 200, body: { status: "ready" } } : { status: 503, body: { error: "unavailable" } }
        )
    }
  }
  if (dev) {
    table["POST /dev/token"] = {
      handle: (request) =>
        Effect.gen(function*() {
          const { role, ref } = yield* devTokenBody(request)
          // Present only when main built the dev issuer; production has none to find.
          const issuer = yield* Effect.serviceOption(DevIssuer)
          if (Option.isNone(issuer)) return yield* new NotFound()
          return { status: 200, body: { accessToken: yield* issuer.value.mint(role, ref) } }
        })
    }
  }
  return table
}

export interface HttpOptions {
  readonly dev: boolean
  readonly allowedOrigins: ReadonlySet<string>
  /** Services must also show a client certificate (TIDINGS_TLS_CLIENT_CA is set). */
  readonly serviceClientCertificates: boolean
  /** Largest request body (contract: 16 KiB). */
  readonly bodyBytes: number
  /** Logs a defect (a bug): the message is left out, as it could hold input. */
  readonly onDefect: (cause: Cause.Cause<unknown>, request: string) => void
  /** One debug line per request: its id, the route (a fixed table key), status and time. */
  readonly onServed?: (request: string, route: string, status: number, ms: number) => void
}

const send = (res: ServerResponse, reply: Reply, extra: Record<string, string> = {}) => {
  if (res.headersSent) return
  const payload = reply.body === undefined ? undefined : JSON.stringify(reply.body)
  res.writeHead(reply.status, {
    ...extra,
    ...(payload === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) })
  })
  res.end(payload)
}

const corsHeaders = (origin: string, preflight: boolean): Record<string, string> => ({
  "access-control-allow-origin": origin,
  ...(preflight
    ? {
      "access-control-allow-methods": "POST",
      "access-control-allow-headers": "authorization, content-type",
      "access-control-max-age": "600"
    }
    : {})
})

/**
 * Every refused access token (401) or missing right (403), whichever route it was shown to:
 * counted by its fixed cause, and audited per address, aggregated (programs/Refusals.ts).
 */
const refused = (peer: string) => (error: GatewayError) =>
  error._tag === "Unauthenticated"
    ? Effect.andThen(
      Metrics.authFailed("token", error.cause),
      Effect.flatMap(Refusals, (refusals) => refusals.refused({ event: "auth.refused", cause: error.cause, peer }))
    )
    : error._tag === "Forbidden"
    ? Effect.flatMap(Refusals, (refusals) => refusals.refused({ event: "auth.refused", cause: "forbidden", peer }))
    : Effect.void

export const makeHandler = (
  options: HttpOptions,
  run: <A>(effect: Effect.Effect<A, GatewayError, Requirements>) => Promise<Exit.Exit<A, GatewayError>>
) => {
  const table = routes(options.dev, options.serviceClientCertificates, options.onDefect)
  const corsPaths = new Set(options.dev ? [CORS_PATH, DEV_CORS_PATH] : [CORS_PATH])
  const demo = options.dev ? makeDemo() : undefined
  const failed = (error: GatewayError): Reply => {
    const { status, error: code } = httpFor(error)
    return { status, body: { error: code } }
  }

  const ids = Ids.correlation("r")

  return (req: IncomingMessage, res: ServerResponse) => {
    for (const name in SECURITY_HEADERS) res.setHeader(name, SECURITY_HEADERS[name]!)
    // Ours, never the caller's: an operator can match a reported id to the log line.
    const id = ids()
    res.setHeader("x-request-id", id)
    const path = (req.url ?? "/").split("?", 1)[0]!
    const origin = req.headers.origin
    const corsPath = corsPaths.has(path)
    const cors = corsPath && origin !== undefined && options.allowedOrigins.has(origin)
    if (corsPath) res.setHeader("vary", "Origin")

    if (req.method === "OPTIONS" && corsPath) {
      return send(res, { status: 204 }, cors ? corsHeaders(origin, true) : {})
    }
    if (demo !== undefined && req.method === "GET" && demo(path, res)) return
    const key = `${req.method} ${path}`
    const route = table[key]
    if (options.onServed !== undefined) {
      const started = performance.now()
      const onServed = options.onServed
      res.once("finish", () => onServed(id, route === undefined ? "unmatched" : key, res.statusCode, Math.round(performance.now() - started)))
    }
    const extra = cors ? corsHeaders(origin, false) : {}
    if (route === undefined) {
      req.resume()
      return send(res, failed(new NotFound()), extra)
    }
    void readBody(req, route.bodyBytes ?? options.bodyBytes).then((text) => {
      if (text === undefined || (text.length > 0 && !isJson(req.headers["content-type"]))) {
        res.setHeader("connection", "close")
        res.once("finish", () => req.destroy())
        return send(res, failed(new MalformedInput()), extra)
      }
      const certified = (req.socket as TLSSocket).authorized === true
      const peer = req.socket.remoteAddress ?? "unknown"
      const handled = route.handle({ id, body: text, headers: req.headers, peer, certified })
      return run(Effect.tapError(handled, refused(peer))).then((exit) => {
        if (Exit.isSuccess(exit)) return send(res, exit.value, extra)
        const error = Option.getOrUndefined(Cause.findErrorOption(exit.cause))
        if (error === undefined) {
          options.onDefect(exit.cause, id)
          return send(res, { status: 500, body: { error: "internal" } }, extra)
        }
        const retry = error._tag === "RateLimited" ? { "retry-after": String(Math.ceil(error.retryAfterMs / 1000)) } : {}
        return send(res, failed(error), { ...extra, ...retry })
      })
    })
  }
}
