// A `ws` socket as a session Transport: inbound frames through a small queue (pausing the
// socket when it fills), outbound frames through a bounded window. The window counts frames the
// client has not yet acknowledged: every ACK_EVERY frames we send a ping numbered with the
// frames sent so far, and the automatic pong tells us how far the client has read. The
// kernel can absorb megabytes for a stalled reader; the pongs cannot lie (docs/decisions/0003).
import { Effect } from "effect"
import { type RawData, WebSocket } from "ws"
import { CloseTable } from "../domain/Close.ts"
import { ClosedNormally, ConnectionLost, FrameRejected, MessageTooBig, TooSlow } from "../domain/Errors.ts"
import type { Interruption, Outbox, Transport, TransportEnd } from "../programs/Session.ts"
import * as Window from "./Window.ts"

export type WindowLimits = Window.WindowLimits

/** Shared by every send: one options object, not one per delivery. */
const AS_TEXT = { binary: false } as const
/** What a binary frame becomes for the session: text that never decodes as a message. */
const NOT_A_MESSAGE = "\u0000"

/** Inbound frames queued before the socket stops reading (backpressure on a flooding client). */
const INBOUND_HIGH_WATER = 32

// The hub hands every subscriber of a channel the same frame string in a row, so one
// cached encoding turns N string→bytes conversions per event into one.
let cachedFrame = ""
let cachedBytes = Buffer.alloc(0)
const bytesOf = (frame: string): Buffer => {
  if (frame !== cachedFrame) {
    cachedFrame = frame
    cachedBytes = Buffer.from(frame, "utf8")
  }
  return cachedBytes
}

const REASONS = new Map<number, string>(
  [CloseTable.protocolError, CloseTable.invalidPayload, CloseTable.policyViolation, CloseTable.messageTooBig]
    .map((row) => [row.code, row.reason])
)

/** The session's ending for an error `ws` reports on a frame (it has already closed the socket). */
const refusal = (code: string | undefined): TransportEnd => {
  switch (code) {
    case "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH":
    case "WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH":
      return new MessageTooBig()
    case "WS_ERR_INVALID_UTF8":
      return new FrameRejected({ fault: "payload" })
    case "WS_ERR_TOO_MANY_BUFFERED_PARTS":
      return new FrameRejected({ fault: "policy" })
    default:
      return new FrameRejected({ fault: "protocol" })
  }
}

/** `ws` refuses a frame itself (1002, 1007, 1008, 1009) with no reason; ours are fixed strings. */
export class GatewaySocket extends WebSocket {
  override close(code?: number, reason?: string | Buffer) {
    super.close(code, reason ?? (code === undefined ? undefined : REASONS.get(code)))
  }
}

const CONNECTION = Symbol("tidings/Connection")
type Tagged = WebSocket & { [CONNECTION]: Connection }

// The socket's listeners are module-level functions that find their connection on the
// socket: four closures (and their contexts) fewer per connection than inline listeners.
const connectionOf = (ws: WebSocket): Connection => (ws as Tagged)[CONNECTION]
function onMessage(this: WebSocket, data: RawData, isBinary: boolean) {
  connectionOf(this).inbound(isBinary ? NOT_A_MESSAGE : data.toString())
}
function onPong(this: WebSocket, data: Buffer) {
  connectionOf(this).ponged(data)
}
function onError(this: WebSocket, error: Error & { code?: string }) {
  // Frame errors only; a socket error ends in 'close' anyway.
  if (error.code?.startsWith("WS_ERR_")) connectionOf(this).fail(refusal(error.code))
}
/** No close frame came: the connection was cut (ws reports 1006), not closed by the client. */
const ABNORMAL = 1006

// A failure `ws` reported first (onError) or the session's own end wins: `fail` keeps the first.
function onClose(this: WebSocket, code: number) {
  connectionOf(this).fail(code === ABNORMAL ? new ConnectionLost() : new ClosedNormally())
}

type Ending = TransportEnd | Interruption
type Resume = (effect: Effect.Effect<string, Ending>) => void

let nextSlice = 0

/**
 * One socket as a session's Transport (and its Outbox). Inbound frames wait in a plain array
 * for the session's single `receive`; the socket stops reading when too many wait.
 */
export class Connection implements Transport, Outbox, Window.WindowState {
  readonly origin: string
  readonly peer: string
  ticket: string | undefined
  readonly id: string
  readonly outbox: Outbox = this
  readonly receive: Effect.Effect<string, Ending>
  /** When the unanswered heartbeat ping went out; undefined once any pong came back. */
  awaitingPongSince: number | undefined = undefined
  /** Which part of the heartbeat interval pings this socket (spreads the pings). */
  readonly slice = nextSlice++
  private readonly ws: Tagged
  private readonly window: WindowLimits
  /** performance.now() when the upgrade request came in, for the handshake timing. */
  private readonly startedAt: number
  private readonly onOpened: ((startedAt: number) => void) | undefined
  private queued: Array<string> | undefined = undefined
  private waiting: Resume | undefined = undefined
  private ending: Ending | undefined = undefined
  private ended = false
  // The outbound window's counters (Window.ts holds its rules).
  sent = 0
  acked = 0
  pingedAt = 0

  constructor(
    ws: WebSocket,
    options: {
      readonly origin: string
      readonly peer: string
      readonly ticket: string | undefined
      readonly window: WindowLimits
      readonly startedAt: number
      /** For log lines only (`c-…`): says nothing about the client. */
      readonly id: string
      /** Shared by every connection: told when a session opened, with its upgrade's start. */
      readonly onOpened?: (startedAt: number) => void
    }
  ) {
    this.ws = ws as Tagged
    this.ws[CONNECTION] = this
    this.origin = options.origin
    this.peer = options.peer
    this.ticket = options.ticket
    this.window = options.window
    this.startedAt = options.startedAt
    this.id = options.id
    this.onOpened = options.onOpened
    this.receive = Effect.callback<string, Ending>((resume) => this.take(resume))
    ws.on("message", onMessage)
    ws.on("pong", onPong)
    ws.on("error", onError)
    ws.on("close", onClose)
  }

  consumed() {
    this.ticket = undefined
  }

  opened() {
    this.onOpened?.(this.startedAt)
  }

  /** Closes the socket with the session's code, unless it has closed already. */
  closeWith(code: number, reason: string) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(code, reason)
  }

  /** A frame from the client: to the waiting `receive`, or queued for the next. */
  inbound(text: string) {
    if (this.ended) return
    const waiting = this.waiting
    if (waiting !== undefined) {
      this.waiting = undefined
      return waiting(Effect.succeed(text))
    }
    const queued = (this.queued ??= [])
    queued.push(text)
    if (queued.length >= INBOUND_HIGH_WATER) this.ws.pause()
  }

  private take(resume: Resume) {
    const queued = this.queued
    if (queued !== undefined && queued.length > 0) {
      const text = queued.shift()!
      if (this.ws.isPaused && queued.length < INBOUND_HIGH_WATER / 2) this.ws.resume()
      return resume(Effect.succeed(text))
    }
    if (this.ending !== undefined) return resume(Effect.fail(this.ending))
    this.waiting = resume
  }

  /** The socket ended, or `end` was called: frames already queued are still handed out first. */
  fail(reason: Ending) {
    if (this.ended) return
    this.ended = true
    this.ending = reason
    const waiting = this.waiting
    if (waiting === undefined) return
    this.waiting = undefined
    // Resuming can run the session's close at once; a microtask lets the caller (an offer in
    // the middle of a fan-out) finish first.
    queueMicrotask(() => waiting(Effect.fail(reason)))
  }

  end(reason: Interruption) {
    this.fail(reason)
  }

  ponged(data: Buffer) {
    this.awaitingPongSince = undefined
    Window.acknowledge(this, data.toString("latin1"))
  }

  /** Heartbeat: a numbered ping, so its pong also acknowledges the window. */
  ping() {
    this.ws.ping(Window.pingPayload(this))
  }

  terminate() {
    this.ws.terminate()
  }

  /**
   * The session is over: stop queueing input and read the socket again if a flood had paused
   * it, so the client's close reply and FIN are seen at once rather than after ws's 30 s.
   */
  finish() {
    this.ended = true
    this.queued = undefined
    if (this.ws.isPaused) this.ws.resume()
  }

  offer(frame: string): boolean {
    const ws = this.ws
    if (this.ended || ws.readyState !== WebSocket.OPEN) return false
    if (!Window.admits(this, this.window, ws.bufferedAmount)) {
      this.fail(new TooSlow())
      return false
    }
    ws.send(bytesOf(frame), AS_TEXT)
    if (Window.recordSent(this)) this.ping()
    return true
  }
}
