// A `ws` socket as a session Transport: inbound frames handed to the session (which pauses the
// socket when too many wait), outbound frames through a bounded window. The window counts frames the
// client has not yet acknowledged: every ACK_EVERY frames we send a ping numbered with the
// frames sent so far, and the automatic pong tells us how far the client has read. The
// kernel can absorb megabytes for a stalled reader; the pongs cannot lie (docs/decisions/0003).
import type { Exit } from "effect"
import { type RawData, WebSocket } from "ws"
import { CloseTable } from "../domain/Close.ts"
import { ClosedNormally, ConnectionLost, FrameRejected, type GatewayError, MessageTooBig, ShuttingDown, TooSlow } from "../domain/Errors.ts"
import type { Inbound, Interruption, Outbox, Transport, TransportEnd } from "../programs/Session.ts"
import * as Window from "./Window.ts"

export type WindowLimits = Window.WindowLimits

/** Shared by every send: one options object, not one per delivery. */
const AS_TEXT = { binary: false } as const
/** What a binary frame becomes for the session: text that never decodes as a message. */
const NOT_A_MESSAGE = "\u0000"

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

/** Told when a connection's session is over: one function for every connection, not a closure each. */
export type OnClosed = (connection: Connection, error: GatewayError, exit: Exit.Exit<unknown, GatewayError>) => void

let nextSlice = 0

/**
 * One socket as a session's Transport (and its Outbox). Inbound frames go straight to the
 * session, which queues them and asks the socket to pause when too many wait.
 */
export class Connection implements Transport, Outbox, Window.WindowState {
  readonly origin: string
  readonly peer: string
  ticket: string | undefined
  readonly id: string
  readonly outbox: Outbox = this
  /** When the unanswered heartbeat ping went out; undefined once any pong came back. */
  awaitingPongSince: number | undefined = undefined
  /** Which part of the heartbeat interval pings this socket (spreads the pings). */
  readonly slice = nextSlice++
  private readonly ws: Tagged
  private readonly window: WindowLimits
  /** performance.now() when the upgrade request came in, for the handshake timing. */
  private readonly startedAt: number
  private readonly onOpened: ((startedAt: number) => void) | undefined
  private readonly onClosed: OnClosed
  /** The session this socket carries (set once it is started, right after construction). */
  private session: Inbound | undefined = undefined
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
      readonly onClosed: OnClosed
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
    this.onClosed = options.onClosed
    ws.on("message", onMessage)
    ws.on("pong", onPong)
    ws.on("error", onError)
    ws.on("close", onClose)
  }

  /** The session started on this socket: frames and the socket's end go to it from now on. */
  attach(session: Inbound) {
    this.session = session
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

  /** A frame from the client, for the session. */
  inbound(text: string) {
    if (!this.ended) this.session?.receive(text)
  }

  pause() {
    this.ws.pause()
  }

  resume() {
    if (this.ws.isPaused) this.ws.resume()
  }

  /** The socket ended, or the gateway ends the session (the first reason wins). */
  fail(reason: Ending) {
    if (this.ended) return
    this.ended = true
    this.session?.end(reason)
  }

  /** The node is shutting down: the session closes 1001 at once. */
  shutDown() {
    this.session?.end(new ShuttingDown())
  }

  closed(error: GatewayError, exit: Exit.Exit<unknown, GatewayError>) {
    this.onClosed(this, error, exit)
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
    this.resume()
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
