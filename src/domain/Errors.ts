// Every way a request, a frame or a session can fail, as tagged values named after the
// condition. None carries caller input: at most a fixed `cause` code, so nothing an
// attacker sends can travel into a close reason, a body, a log line or an audit record.
import { Schema } from "effect"

/** A body, frame or field that does not decode (or is too large, too deep, unknown). */
export class MalformedInput extends Schema.TaggedError<MalformedInput>()("MalformedInput", {}) {}

/** Repeated malformed or unknown messages on one socket (4400). */
export class ProtocolViolation extends Schema.TaggedError<ProtocolViolation>()("ProtocolViolation", {}) {}

/** A frame over the size limit (1009). */
export class MessageTooBig extends Schema.TaggedError<MessageTooBig>()("MessageTooBig", {}) {}

/** What the WebSocket layer found wrong with a frame below the message level. */
export const FrameFault = Schema.Literals(["protocol", "payload", "policy"])
export type FrameFault = typeof FrameFault.Type

/**
 * A frame the WebSocket layer refused: broken framing (1002), text that is not UTF-8 (1007),
 * or a fragment flood (1008). `ws` closes these itself; this records what it sent.
 */
export class FrameRejected extends Schema.TaggedError<FrameRejected>()("FrameRejected", { fault: FrameFault }) {}

/** `revoked`: an access token issued before its subject's revocation (it gets no ticket). */
export const UnauthenticatedCause = Schema.Literals(["missing", "invalid", "expired", "unknown_principal", "revoked"])
export type UnauthenticatedCause = typeof UnauthenticatedCause.Type

/** An access token that is missing, forged, expired, foreign or maps to no principal. */
export class Unauthenticated extends Schema.TaggedError<Unauthenticated>()("Unauthenticated", {
  cause: UnauthenticatedCause
}) {}

export const TicketCause = Schema.Literals(["missing", "invalid", "expired", "audience", "used", "revoked"])
export type TicketCause = typeof TicketCause.Type

/** Any ticket failure. The cause is for audit and metrics only: the client sees one 4401. */
export class TicketRejected extends Schema.TaggedError<TicketRejected>()("TicketRejected", {
  cause: TicketCause
}) {}

/** An authenticated caller without the role or scope for this action (HTTP 403). */
export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", {}) {}

/** A subscription the policy refuses; the same answer whether the channel exists or not. */
export class SubscriptionDenied extends Schema.TaggedError<SubscriptionDenied>()("SubscriptionDenied", {}) {}

/** Denied subscriptions repeated past the limit: a scraping attempt (4403). */
export class RepeatedDenials extends Schema.TaggedError<RepeatedDenials>()("RepeatedDenials", {}) {}

export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {}) {}

/** What was limited; `storage` is a publishing service's storage quota (domain/Quota.ts). */
export const RateScope = Schema.Literals(["message", "subscribe", "connect", "ticket", "publish", "storage"])
export type RateScope = typeof RateScope.Type

export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  scope: RateScope,
  retryAfterMs: Schema.Number
}) {}

export class TooManySessions extends Schema.TaggedError<TooManySessions>()("TooManySessions", {}) {}

/** The session reached its deadline: the access token's `exp` or TIDINGS_SESSION_MAX_S (4408). */
export class SessionExpired extends Schema.TaggedError<SessionExpired>()("SessionExpired", {}) {}

/** No client message for TIDINGS_IDLE_TIMEOUT_S: the user left the app (4410). */
export class SessionIdle extends Schema.TaggedError<SessionIdle>()("SessionIdle", {}) {}

export class SessionRevoked extends Schema.TaggedError<SessionRevoked>()("SessionRevoked", {}) {}

/** The client does not read fast enough: its outbound window is full (4508). */
export class TooSlow extends Schema.TaggedError<TooSlow>()("TooSlow", {}) {}

export const BackingService = Schema.Literals([
  "ticket-store", "event-bus", "care-relationships", "sessions", "rate-limiter", "audit-log"
])
export type BackingService = typeof BackingService.Type

/** A backing service (Redis, the audit sink) did not answer: fail closed, try again later. */
export class Unavailable extends Schema.TaggedError<Unavailable>()("Unavailable", {
  service: BackingService
}) {}

/** The node is shutting down; clients reconnect elsewhere (1001). */
export class ShuttingDown extends Schema.TaggedError<ShuttingDown>()("ShuttingDown", {}) {}

/** The peer closed the socket normally (1000). */
export class ClosedNormally extends Schema.TaggedError<ClosedNormally>()("ClosedNormally", {}) {}

/**
 * The connection ended without a close handshake (1006): cut by the peer or the network, by
 * `ws` or the kernel under a flood, or by our heartbeat. Recorded, never sent.
 */
export class ConnectionLost extends Schema.TaggedError<ConnectionLost>()("ConnectionLost", {}) {}

/** A bug or an unexpected failure; details go to the structured log, never to the peer. */
export class InternalError extends Schema.TaggedError<InternalError>()("InternalError", {}) {}

export type GatewayError =
  | MalformedInput
  | ProtocolViolation
  | MessageTooBig
  | FrameRejected
  | Unauthenticated
  | TicketRejected
  | Forbidden
  | SubscriptionDenied
  | RepeatedDenials
  | NotFound
  | RateLimited
  | TooManySessions
  | SessionExpired
  | SessionIdle
  | SessionRevoked
  | TooSlow
  | Unavailable
  | ShuttingDown
  | ClosedNormally
  | ConnectionLost
  | InternalError

/** One sample of every error, for exhaustive tests of the mappings. */
export const samples: ReadonlyArray<GatewayError> = [
  new MalformedInput(),
  new ProtocolViolation(),
  new MessageTooBig(),
  ...FrameFault.literals.map((fault) => new FrameRejected({ fault })),
  ...UnauthenticatedCause.literals.map((cause) => new Unauthenticated({ cause })),
  ...TicketCause.literals.map((cause) => new TicketRejected({ cause })),
  new Forbidden(),
  new SubscriptionDenied(),
  new RepeatedDenials(),
  new NotFound(),
  ...RateScope.literals.map((scope) => new RateLimited({ scope, retryAfterMs: 1000 })),
  new TooManySessions(),
  new SessionExpired(),
  new SessionIdle(),
  new SessionRevoked(),
  new TooSlow(),
  ...BackingService.literals.map((service) => new Unavailable({ service })),
  new ShuttingDown(),
  new ClosedNormally(),
  new ConnectionLost(),
  new InternalError()
]
