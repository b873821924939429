// The one mapping from an error to what the peer is told: a WebSocket close (contract §6),
// an error frame code (§3) or an HTTP status and body code (§2), and what a client should do
// about each close (its action). Total and pure; reasons are fixed strings, so no identifier,
// token or PHI can ever reach a peer through them. No `effect` import: the browser client
// (client/) reads the action table from this module as plain data.
import type { GatewayError } from "./Errors.ts"

export interface Close {
  readonly code: number
  readonly reason: string
}

/**
 * What a client does after a close (or a refused ticket request):
 * - `retry`: reconnect with backoff (exponential, full jitter); `slow` rows back off longer;
 * - `reauthenticate`: get a new access token and ticket, then reconnect;
 * - `stop`: do not reconnect without a user action (a client bug, a refusal, a logoff).
 */
export type ClientAction = "retry" | "reauthenticate" | "stop"

export interface CloseRow extends Close {
  readonly action: ClientAction
  /** Back off longer than for other retries (the client was rate limited). */
  readonly slow?: true
}

/** Contract §6, verbatim, plus the codes `ws` sends on its own and 1006 (docs/protocol.md). */
export const CloseTable = {
  normal: { code: 1000, reason: "normal", action: "stop" },
  goingAway: { code: 1001, reason: "going away", action: "retry" },
  protocolError: { code: 1002, reason: "protocol error", action: "stop" },
  /** Only recorded (audit, metrics): RFC 6455 forbids sending it; the connection is gone. */
  abnormal: { code: 1006, reason: "abnormal closure", action: "retry" },
  invalidPayload: { code: 1007, reason: "invalid payload", action: "stop" },
  policyViolation: { code: 1008, reason: "policy violation", action: "stop" },
  messageTooBig: { code: 1009, reason: "message too big", action: "stop" },
  internalError: { code: 1011, reason: "internal error", action: "retry" },
  badRequest: { code: 4400, reason: "bad request", action: "stop" },
  unauthorized: { code: 4401, reason: "unauthorized", action: "reauthenticate" },
  forbidden: { code: 4403, reason: "forbidden", action: "stop" },
  sessionExpired: { code: 4408, reason: "session expired", action: "reauthenticate" },
  sessionRevoked: { code: 4409, reason: "session revoked", action: "stop" },
  /** The user was idle past TIDINGS_IDLE_TIMEOUT_S: reconnect only on their next activity. */
  idleTimeout: { code: 4410, reason: "idle timeout", action: "stop" },
  rateLimited: { code: 4429, reason: "rate limited", action: "retry", slow: true },
  tooManySessions: { code: 4430, reason: "too many sessions", action: "stop" },
  tryAgainLater: { code: 4503, reason: "try again later", action: "retry" },
  tooSlow: { code: 4508, reason: "too slow", action: "retry" }
} as const satisfies Record<string, CloseRow>

/** The action for a close code; a code not in the table (another server, a proxy) is retried. */
export const actionForClose = (code: number): { readonly action: ClientAction; readonly slow: boolean } => {
  for (const row of Object.values(CloseTable) as ReadonlyArray<CloseRow>) {
    if (row.code === code) return { action: row.action, slow: row.slow === true }
  }
  return { action: "retry", slow: false }
}

/** The action for an answer of `POST /v1/tickets` that is not 201. */
export const actionForTicketStatus = (status: number): { readonly action: ClientAction; readonly slow: boolean } =>
  status === 401
    ? { action: "reauthenticate", slow: false }
    : status === 429
    ? { action: "retry", slow: true }
    : status >= 500 || status === 408
    ? { action: "retry", slow: false }
    : { action: "stop", slow: false }

type ByTag<A> = { readonly [K in GatewayError["_tag"]]: A }

// What a peer is told: code and reason only (the action is the client's business, not the wire's).
const plain = Object.fromEntries(
  Object.entries(CloseTable).map(([name, row]) => [name, { code: row.code, reason: row.reason }])
) as { readonly [K in keyof typeof CloseTable]: Close }

const CLOSES: ByTag<Close> = {
  MalformedInput: plain.badRequest,
  ProtocolViolation: plain.badRequest,
  MessageTooBig: plain.messageTooBig,
  FrameRejected: plain.protocolError,
  Unauthenticated: plain.unauthorized,
  TicketRejected: plain.unauthorized,
  Forbidden: plain.forbidden,
  SubscriptionDenied: plain.forbidden,
  RepeatedDenials: plain.forbidden,
  NotFound: plain.badRequest,
  RateLimited: plain.rateLimited,
  TooManySessions: plain.tooManySessions,
  SessionExpired: plain.sessionExpired,
  SessionRevoked: plain.sessionRevoked,
  TooSlow: plain.tooSlow,
  Unavailable: plain.tryAgainLater,
  ShuttingDown: plain.goingAway,
  ClosedNormally: plain.normal,
  ConnectionLost: plain.abnormal,
  InternalError: plain.internalError
}

export const closeFor = (error: GatewayError): Close => {
  if (error._tag === "FrameRejected") {
    return error.fault === "payload" ? plain.invalidPayload : error.fault === "policy" ? plain.policyViolation : plain.protocolError
  }
  return CLOSES[error._tag]
}

/** Error frame codes (§3): the answer to one message that leaves the socket open. */
export type FrameErrorCode = "bad_request" | "forbidden" | "rate_limited" | "unavailable"

const FRAME_CODES: ByTag<FrameErrorCode> = {
  MalformedInput: "bad_request",
  ProtocolViolation: "bad_request",
  MessageTooBig: "bad_request",
  FrameRejected: "bad_request",
  Unauthenticated: "forbidden",
  TicketRejected: "forbidden",
  Forbidden: "forbidden",
  SubscriptionDenied: "forbidden",
  RepeatedDenials: "forbidden",
  NotFound: "forbidden",
  RateLimited: "rate_limited",
  TooManySessions: "rate_limited",
  SessionExpired: "forbidden",
  SessionRevoked: "forbidden",
  TooSlow: "unavailable",
  Unavailable: "unavailable",
  ShuttingDown: "unavailable",
  ClosedNormally: "unavailable",
  ConnectionLost: "unavailable",
  InternalError: "unavailable"
}

export const frameCodeFor = (error: GatewayError): FrameErrorCode => FRAME_CODES[error._tag]

/** HTTP error body codes (§2). */
export type HttpErrorCode =
  | "bad_request" | "unauthorized" | "forbidden" | "not_found" | "rate_limited" | "unavailable" | "internal"

export interface HttpFailure {
  readonly status: number
  readonly error: HttpErrorCode
}

const HTTP: ByTag<HttpFailure> = {
  MalformedInput: { status: 400, error: "bad_request" },
  ProtocolViolation: { status: 400, error: "bad_request" },
  MessageTooBig: { status: 400, error: "bad_request" },
  FrameRejected: { status: 400, error: "bad_request" },
  Unauthenticated: { status: 401, error: "unauthorized" },
  TicketRejected: { status: 401, error: "unauthorized" },
  Forbidden: { status: 403, error: "forbidden" },
  SubscriptionDenied: { status: 403, error: "forbidden" },
  RepeatedDenials: { status: 403, error: "forbidden" },
  NotFound: { status: 404, error: "not_found" },
  RateLimited: { status: 429, error: "rate_limited" },
  TooManySessions: { status: 429, error: "rate_limited" },
  SessionExpired: { status: 401, error: "unauthorized" },
  SessionRevoked: { status: 401, error: "unauthorized" },
  TooSlow: { status: 503, error: "unavailable" },
  Unavailable: { status: 503, error: "unavailable" },
  ShuttingDown: { status: 503, error: "unavailable" },
  ClosedNormally: { status: 500, error: "internal" },
  ConnectionLost: { status: 500, error: "internal" },
  InternalError: { status: 500, error: "internal" }
}

export const httpFor = (error: GatewayError): HttpFailure => HTTP[error._tag]
