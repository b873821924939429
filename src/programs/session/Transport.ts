// A session's face to its socket, both ways: what the edge gives a session (the Transport) and
// what it calls on the session it started (Inbound). The edge (server/Connection.ts) builds
// them from `ws`; program tests build them from an array.
import { Cause, Exit } from "effect"
import {
  ClosedNormally, type ConnectionLost, type FrameRejected, type GatewayError, InternalError, type MessageTooBig, type ProtocolViolation,
  type RateLimited, type RepeatedDenials, type SessionExpired, type SessionIdle, type SessionRevoked, ShuttingDown, type TicketRejected,
  type TooManySessions, type TooSlow, type Unavailable
} from "../../domain/Errors.ts"

/** A connection's way out. `offer` never waits; false means the client's window is full. */
export interface Outbox {
  readonly offer: (frame: string) => boolean
}

/** How the socket itself can end a session. */
export type TransportEnd = ClosedNormally | ConnectionLost | MessageTooBig | FrameRejected | TooSlow

/**
 * How the gateway ends a session from outside its messages: revoked, past its deadline or idle,
 * its checks not made for too long (Unavailable), or the node shutting down.
 */
export type Interruption = SessionRevoked | SessionExpired | SessionIdle | Unavailable | ShuttingDown

/** What a session needs from its socket. */
export interface Transport {
  readonly origin: string
  /** The client's network address, for per-address limits only (never logged or audited). */
  readonly peer: string
  readonly ticket: string | undefined
  /** A log correlation id (`c-…`) for the session's own log lines, if the edge gave one. */
  readonly id?: string
  readonly outbox: Outbox
  /** Called once the ticket has been checked, whatever the outcome: the transport may forget it. */
  readonly consumed?: () => void
  /** Called once the session is open (ticket consumed, registered): ends the handshake timing. */
  readonly opened?: () => void
  /** Too many client frames wait: stop reading the socket until `resume`. */
  readonly pause?: () => void
  readonly resume?: () => void
  /**
   * Called once, when the session is over and audited, with the error that ended it (its close
   * code: `Close.closeFor`) and the exit it is read from (for logging a defect).
   */
  readonly closed: (error: GatewayError, exit: Exit.Exit<unknown, GatewayError>) => void
}

/** What the edge calls on a session it started. Neither call waits. */
export interface Inbound {
  /** A text frame from the client; handled in order, one at a time. */
  readonly receive: (text: string) => void
  /**
   * Ends the session (the first reason wins). A message being handled finishes first, and
   * frames already received are still handled; ShuttingDown interrupts at once.
   */
  readonly end: (reason: TransportEnd | Interruption) => void
}

export type SessionEnd =
  | TransportEnd | TicketRejected | Unavailable | SessionRevoked | SessionExpired | SessionIdle | ProtocolViolation | RepeatedDenials
  | RateLimited | TooManySessions | ShuttingDown

/** How a session ended, as the error its close code is read from. */
export const endOf = (exit: Exit.Exit<unknown, GatewayError>): GatewayError => {
  if (Exit.isSuccess(exit)) return new ClosedNormally()
  const error = Cause.findErrorOption(exit.cause)
  if (error._tag === "Some") return error.value
  return Cause.hasInterruptsOnly(exit.cause) ? new ShuttingDown() : new InternalError()
}
