// The one mapping from an error to what the peer is told: a WebSocket close (contract §6),
// an error frame code (§3) or an HTTP status and body code (§2). Total and pure; reasons
// are fixed strings, so no identifier, token or PHI can ever reach a peer through them.
import { Match } from "effect"
import type { GatewayError } from "./Errors.ts"

export interface Close {
  readonly code: number
  readonly reason: string
}

/** Contract §6, verbatim, plus the three codes `ws` sends on its own (docs/protocol.md). */
export const CloseTable = {
  normal: { code: 1000, reason: "normal" },
  goingAway: { code: 1001, reason: "going away" },
  protocolError: { code: 1002, reason: "protocol error" },
  /** Only recorded (audit, metrics): RFC 6455 forbids sending it; the connection is gone. */
  abnormal: { code: 1006, reason: "abnormal closure" },
  invalidPayload: { code: 1007, reason: "invalid payload" },
  policyViolation: { code: 1008, reason: "policy violation" },
  messageTooBig: { code: 1009, reason: "message too big" },
  internalError: { code: 1011, reason: "internal error" },
  badRequest: { code: 4400, reason: "bad request" },
  unauthorized: { code: 4401, reason: "unauthorized" },
  forbidden: { code: 4403, reason: "forbidden" },
  sessionExpired: { code: 4408, reason: "session expired" },
  sessionRevoked: { code: 4409, reason: "session revoked" },
  rateLimited: { code: 4429, reason: "rate limited" },
  tooManySessions: { code: 4430, reason: "too many sessions" },
  tryAgainLater: { code: 4503, reason: "try again later" },
  tooSlow: { code: 4508, reason: "too slow" }
} as const satisfies Record<string, Close>

export const closeFor: (error: GatewayError) => Close = Match.type<GatewayError>().pipe(
  Match.tagsExhaustive({
    MalformedInput: () => CloseTable.badRequest,
    ProtocolViolation: () => CloseTable.badRequest,
    MessageTooBig: () => CloseTable.messageTooBig,
    FrameRejected: (e) =>
      e.fault === "payload" ? CloseTable.invalidPayload : e.fault === "policy" ? CloseTable.policyViolation : CloseTable.protocolError,
    Unauthenticated: () => CloseTable.unauthorized,
    TicketRejected: () => CloseTable.unauthorized,
    Forbidden: () => CloseTable.forbidden,
    SubscriptionDenied: () => CloseTable.forbidden,
    RepeatedDenials: () => CloseTable.forbidden,
    NotFound: () => CloseTable.badRequest,
    RateLimited: () => CloseTable.rateLimited,
    TooManySessions: () => CloseTable.tooManySessions,
    SessionExpired: () => CloseTable.sessionExpired,
    SessionRevoked: () => CloseTable.sessionRevoked,
    TooSlow: () => CloseTable.tooSlow,
    Unavailable: () => CloseTable.tryAgainLater,
    ShuttingDown: () => CloseTable.goingAway,
    ClosedNormally: () => CloseTable.normal,
    ConnectionLost: () => CloseTable.abnormal,
    InternalError: () => CloseTable.internalError
  })
)

/** Error frame codes (§3): the answer to one message that leaves the socket open. */
export type FrameErrorCode = "bad_request" | "forbidden" | "rate_limited" | "unavailable"

export const frameCodeFor: (error: GatewayError) => FrameErrorCode = Match.type<GatewayError>().pipe(
  Match.tagsExhaustive({
    MalformedInput: () => "bad_request" as const,
    ProtocolViolation: () => "bad_request" as const,
    MessageTooBig: () => "bad_request" as const,
    FrameRejected: () => "bad_request" as const,
    Unauthenticated: () => "forbidden" as const,
    TicketRejected: () => "forbidden" as const,
    Forbidden: () => "forbidden" as const,
    SubscriptionDenied: () => "forbidden" as const,
    RepeatedDenials: () => "forbidden" as const,
    NotFound: () => "forbidden" as const,
    RateLimited: () => "rate_limited" as const,
    TooManySessions: () => "rate_limited" as const,
    SessionExpired: () => "forbidden" as const,
    SessionRevoked: () => "forbidden" as const,
    TooSlow: () => "unavailable" as const,
    Unavailable: () => "unavailable" as const,
    ShuttingDown: () => "unavailable" as const,
    ClosedNormally: () => "unavailable" as const,
    ConnectionLost: () => "unavailable" as const,
    InternalError: () => "unavailable" as const
  })
)

/** HTTP error body codes (§2). */
export type HttpErrorCode =
  | "bad_request" | "unauthorized" | "forbidden" | "not_found" | "rate_limited" | "unavailable" | "internal"

export interface HttpFailure {
  readonly status: number
  readonly error: HttpErrorCode
}

export const httpFor: (error: GatewayError) => HttpFailure = Match.type<GatewayError>().pipe(
  Match.tagsExhaustive({
    MalformedInput: () => ({ status: 400, error: "bad_request" as const }),
    ProtocolViolation: () => ({ status: 400, error: "bad_request" as const }),
    MessageTooBig: () => ({ status: 400, error: "bad_request" as const }),
    FrameRejected: () => ({ status: 400, error: "bad_request" as const }),
    Unauthenticated: () => ({ status: 401, error: "unauthorized" as const }),
    TicketRejected: () => ({ status: 401, error: "unauthorized" as const }),
    Forbidden: () => ({ status: 403, error: "forbidden" as const }),
    SubscriptionDenied: () => ({ status: 403, error: "forbidden" as const }),
    RepeatedDenials: () => ({ status: 403, error: "forbidden" as const }),
    NotFound: () => ({ status: 404, error: "not_found" as const }),
    RateLimited: () => ({ status: 429, error: "rate_limited" as const }),
    TooManySessions: () => ({ status: 429, error: "rate_limited" as const }),
    SessionExpired: () => ({ status: 401, error: "unauthorized" as const }),
    SessionRevoked: () => ({ status: 401, error: "unauthorized" as const }),
    TooSlow: () => ({ status: 503, error: "unavailable" as const }),
    Unavailable: () => ({ status: 503, error: "unavailable" as const }),
    ShuttingDown: () => ({ status: 503, error: "unavailable" as const }),
    ClosedNormally: () => ({ status: 500, error: "internal" as const }),
    ConnectionLost: () => ({ status: 500, error: "internal" as const }),
    InternalError: () => ({ status: 500, error: "internal" as const })
  })
)
