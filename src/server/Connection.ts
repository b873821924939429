// A `ws` socket as a session Transport: inbound frames through a queue (pausing the socket
// when it fills), outbound frames through a bounded window. The window counts frames the
// client has not yet acknowledged: every ACK_EVERY frames we send a ping numbered with the
// frames sent so far, and the automatic pong tells us how far the client has read. The
// kernel can absorb megabytes for a stalled reader; the pongs cannot lie (docs/decisions/0003).
import { Cause, Effect, Queue } from "effect"
import { type RawData, WebSocket } from "ws"
import { CloseTable } from "../domain/Close.ts"
import { ClosedNormally, FrameRejected, MessageTooBig, TooSlow } from "../domain/Errors.ts"
import { ACK_EVERY_FRAMES } from "../domain/Limits.ts"
import type { Interruption, Transport, TransportEnd } from "../programs/Session.ts"

export interface WindowLimits {
  /** Frames sent but not yet acknowledged by a pong. */
  readonly frames: number
  /** Bytes `ws` holds because the kernel would not take them. */
  readonly bytes: number
}

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

export interface Connection {
  readonly transport: Transport
  /** When the unanswered heartbeat ping went out; undefined once any pong came back. */
  awaitingPongSince: number | undefined
  /** Which part of the heartbeat interval pings this socket (spreads the pings). */
  readonly slice: number
  /** Heartbeat: a numbered ping, so its pong also acknowledges the window. */
  readonly ping: () => void
  readonly terminate: () => void
  /**
   * The session is over: stop queueing input and read the socket again if a flood had paused
   * it, so the client's close reply and FIN are seen at once rather than after ws's 30 s.
   */
  readonly finish: () => void
}

let nextSlice = 0

export const make = (
  ws: WebSocket,
  options: {
    readonly origin: string
    readonly peer: string
    readonly ticket: string | undefined
    readonly window: WindowLimits
    readonly opened?: () => void
  }
): Connection => {
  const inbound = Effect.runSync(Queue.unbounded<string, TransportEnd | Interruption>())
  let ended = false
  let sent = 0
  let acked = 0
  let pingedAt = 0

  const end = (reason: TransportEnd | Interruption) => {
    if (ended) return
    ended = true
    // Failing the queue can resume the session fiber at once; a microtask lets the caller
    // (an offer in the middle of a fan-out) finish first.
    queueMicrotask(() => Queue.failCauseUnsafe(inbound, Cause.fail(reason)))
  }

  ws.on("message", (data: RawData, isBinary: boolean) => {
    if (ended) return
    // Binary frames are not part of the protocol: the session answers them bad_request like
    // any other message that does not decode.
    Queue.offerUnsafe(inbound, isBinary ? NOT_A_MESSAGE : data.toString())
    if (Queue.sizeUnsafe(inbound) >= INBOUND_HIGH_WATER) ws.pause()
  })
  ws.on("pong", (data: Buffer) => {
    connection.awaitingPongSince = undefined
    const upTo = Number(data.toString("latin1"))
    if (Number.isSafeInteger(upTo) && upTo > acked && upTo <= sent) acked = upTo
  })
  // `ws` closes a frame it refuses itself (1002, 1007, 1008, 1009) with no reason; ours are
  // fixed strings. Its receiver calls this socket's `close`, so the reason is added here.
  const close = ws.close.bind(ws)
  ws.close = (code?: number, reason?: string | Buffer) =>
    close(code, reason ?? (code === undefined ? undefined : REASONS.get(code)))
  ws.on("error", (error: Error & { code?: string }) => {
    // Frame errors only; a socket error ends in 'close' anyway.
    if (error.code?.startsWith("WS_ERR_")) end(refusal(error.code))
  })
  ws.once("close", () => end(new ClosedNormally()))

  const ping = () => {
    pingedAt = sent
    ws.ping(String(sent))
  }

  const connection: Connection = {
    awaitingPongSince: undefined,
    slice: nextSlice++,
    ping,
    terminate: () => ws.terminate(),
    finish: () => {
      ended = true
      if (ws.isPaused) ws.resume()
    },
    transport: {
      origin: options.origin,
      peer: options.peer,
      ticket: options.ticket,
      ...(options.opened === undefined ? {} : { opened: options.opened }),
      end,
      receive: Queue.take(inbound).pipe(
        Effect.map((text) => {
          if (ws.isPaused && Queue.sizeUnsafe(inbound) < INBOUND_HIGH_WATER / 2) ws.resume()
          return text
        })
      ),
      outbox: {
        offer: (frame) => {
          if (ended || ws.readyState !== WebSocket.OPEN) return false
          if (sent - acked >= options.window.frames || ws.bufferedAmount > options.window.bytes) {
            end(new TooSlow())
            return false
          }
          ws.send(bytesOf(frame), AS_TEXT)
          sent += 1
          if (sent - pingedAt >= ACK_EVERY_FRAMES) ping()
          return true
        }
      }
    }
  }
  return connection
}
