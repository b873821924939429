// Shared by the security suite: a WebSocket client that keeps every raw frame and its close,
// raw TLS exchanges for requests no well-behaved client sends, and bounded waits.
import { connect as tlsConnect } from "node:tls"
import { type ClientOptions, WebSocket } from "ws"
import { frameLog } from "../support/frames.ts"

/** Every server frame type of contract §3, and those protocol v1.1 adds (`welcome`, `reset`). */
export const SERVER_FRAME_TYPES = ["welcome", "subscribed", "event", "reset", "unsubscribed", "refreshed", "pong", "error"] as const
/** Every error frame code of contract §3. */
export const FRAME_ERROR_CODES = ["bad_request", "forbidden", "rate_limited", "unavailable"] as const
/** Every HTTP error body code of contract §2. */
export const HTTP_ERROR_CODES = ["bad_request", "unauthorized", "forbidden", "not_found", "rate_limited", "unavailable", "internal"] as const
/** Contract §6, verbatim, and 4410 of protocol v1.1: the only close codes and reasons a peer may see. */
export const CLOSE_REASONS: Readonly<Record<number, string>> = {
  1000: "normal", 1001: "going away", 1009: "message too big", 1011: "internal error", 4400: "bad request",
  4401: "unauthorized", 4403: "forbidden", 4408: "session expired", 4409: "session revoked", 4410: "idle timeout", 4429: "rate limited",
  4430: "too many sessions", 4503: "try again later", 4508: "too slow"
}

export const SECURITY_HEADERS = {
  "strict-transport-security": "max-age=31536000; includeSubDomains",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff"
} as const

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export const within = <A>(promise: Promise<A>, ms: number, what: string): Promise<A> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)
    promise.then((value) => (clearTimeout(timer), resolve(value)), (error) => (clearTimeout(timer), reject(error)))
  })

export interface Closed {
  readonly code: number
  readonly reason: string
}

/** A socket's whole life as the client saw it. Frames that are not JSON are kept raw. */
export interface Recorder {
  readonly ws: WebSocket
  readonly raw: Array<string>
  readonly frames: Array<any>
  /** Correlation ids this client sent: the server may echo them back to it, and only to it. */
  readonly sentIds: Set<string>
  readonly closed: Promise<Closed>
  readonly isClosed: () => boolean
  readonly send: (message: unknown) => void
  readonly next: (match: (frame: any) => boolean, timeoutMs?: number) => Promise<any>
  /** Sends a ping and resolves true on its pong, false if the socket closed first. */
  readonly alive: (id: string, timeoutMs?: number) => Promise<boolean>
}

export const record = (ws: WebSocket): Recorder => {
  const raw: Array<string> = []
  const log = frameLog()
  const frames = log.frames
  const sentIds = new Set<string>()
  let done = false
  ws.on("message", (data, isBinary) => {
    const text = isBinary ? `<binary ${(data as Buffer).length} bytes>` : data.toString()
    raw.push(text)
    let frame: any
    try {
      frame = JSON.parse(text)
    } catch {
      frame = { unparsable: text }
    }
    log.push(frame)
  })
  ws.on("error", () => undefined)
  const closed = new Promise<Closed>((resolve) =>
    ws.once("close", (code, reason) => {
      done = true
      resolve({ code, reason: reason.toString() })
    })
  )
  const next: Recorder["next"] = log.next
  const send: Recorder["send"] = (message) => {
    if (typeof message === "object" && message !== null && typeof (message as { id?: unknown }).id === "string") {
      sentIds.add((message as { id: string }).id)
    }
    if (ws.readyState === WebSocket.OPEN) ws.send(typeof message === "string" ? message : JSON.stringify(message))
  }
  return {
    ws, raw, frames, sentIds, closed, send, next,
    isClosed: () => done,
    alive: async (id, timeoutMs = 5_000) => {
      send({ type: "ping", id })
      const outcome = await within(
        Promise.race([
          next((f) => f.type === "pong" && f.id === id, timeoutMs + 1_000).then(() => true, () => false),
          closed.then(() => false)
        ]),
        timeoutMs,
        `pong ${id} or a close`
      )
      return outcome
    }
  }
}

export type Dialed =
  | { readonly kind: "open"; readonly rec: Recorder; readonly protocol: string; readonly headers: Record<string, unknown> }
  | { readonly kind: "rejected"; readonly status: number; readonly headers: Record<string, unknown>; readonly body: string }
  | { readonly kind: "error"; readonly message: string }

/** Opens a WebSocket to any URL with any subprotocols, keeping the handshake's answer. */
export const dial = (
  url: string,
  protocols: ReadonlyArray<string>,
  options: ClientOptions & { readonly ca: string }
): Promise<Dialed> =>
  new Promise((resolve) => {
    let settled = false
    const done = (value: Dialed) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve(value)
    }
    const ws = new WebSocket(url, [...protocols], options)
    const rec = record(ws)
    let upgradeHeaders: Record<string, unknown> = {}
    ws.once("upgrade", (res) => (upgradeHeaders = res.headers))
    ws.once("open", () => done({ kind: "open", rec, protocol: ws.protocol, headers: upgradeHeaders }))
    ws.once("unexpected-response", (_req, res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (body += chunk))
      res.on("end", () => done({ kind: "rejected", status: res.statusCode ?? 0, headers: res.headers, body }))
      res.on("error", () => done({ kind: "rejected", status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    ws.once("error", (error) => done({ kind: "error", message: error.message }))
    const timer = setTimeout(() => (ws.terminate(), done({ kind: "error", message: "handshake timeout" })), 10_000)
  })

export interface RawHttp {
  /** Everything the server sent, as latin1. */
  readonly text: string
  readonly status: number | undefined
  readonly headers: Record<string, string>
  readonly body: string
  /** True when the server closed the connection; false when we gave up waiting. */
  readonly closedByServer: boolean
}

/** Writes bytes on a fresh TLS connection and collects the answer until close or `waitMs`. */
export const rawExchange = (
  port: number,
  ca: string,
  request: string | Buffer,
  waitMs = 1_500
): Promise<RawHttp> =>
  new Promise((resolve) => {
    const chunks: Array<Buffer> = []
    let finished = false
    const finish = (closedByServer: boolean) => {
      if (finished) return
      finished = true
      clearTimeout(timer)
      socket.destroy()
      resolve(parseRaw(Buffer.concat(chunks).toString("latin1"), closedByServer))
    }
    const socket = tlsConnect({ host: "127.0.0.1", port, servername: "localhost", ca })
    socket.on("data", (chunk: Buffer) => chunks.push(chunk))
    socket.on("error", () => undefined)
    socket.once("close", () => finish(true))
    socket.once("secureConnect", () => socket.write(request))
    const timer = setTimeout(() => finish(false), waitMs)
  })

const parseRaw = (text: string, closedByServer: boolean): RawHttp => {
  const end = text.indexOf("\r\n\r\n")
  const head = end === -1 ? text : text.slice(0, end)
  const lines = head.split("\r\n")
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "")?.[1]
  const headers: Record<string, string> = {}
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":")
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  return {
    text,
    status: status === undefined ? undefined : Number(status),
    headers,
    body: end === -1 ? "" : text.slice(end + 4),
    closedByServer
  }
}

/** A syntactically valid WebSocket upgrade request head, for raw exchanges. */
export const upgradeRequest = (options: {
  readonly target?: string
  readonly method?: string
  readonly host?: string
  readonly origin?: string | undefined
  readonly protocols?: string | undefined
  readonly extra?: Record<string, string>
}): string => {
  const lines = [
    `${options.method ?? "GET"} ${options.target ?? "/v1/ws"} HTTP/1.1`,
    `Host: ${options.host ?? "localhost"}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    ...(options.origin === undefined ? [] : [`Origin: ${options.origin}`]),
    ...(options.protocols === undefined ? [] : [`Sec-WebSocket-Protocol: ${options.protocols}`]),
    ...Object.entries(options.extra ?? {}).map(([name, value]) => `${name}: ${value}`)
  ]
  return `${lines.join("\r\n")}\r\n\r\n`
}

/** The WebSocket close frame in a raw 101 exchange's body, if the server sent one. */
export const closeFrameIn = (body: string): { readonly code: number; readonly reason: string } | undefined => {
  const frame = serverFrames(body).find((f) => f.opcode === 0x8)
  if (frame === undefined || frame.payload.length < 2) return undefined
  return { code: frame.payload.readUInt16BE(0), reason: frame.payload.subarray(2).toString("utf8") }
}

/** One masked client frame (RFC 6455 §5.2), any length. */
export const clientFrame = (opcode: number, payload: Buffer | string): Buffer => {
  const data = typeof payload === "string" ? Buffer.from(payload, "utf8") : payload
  const mask = Buffer.from([0x37, 0xfa, 0x21, 0x3d])
  const length = data.length < 126
    ? Buffer.from([0x80 | data.length])
    : data.length < 65_536
    ? Buffer.from([0x80 | 126, data.length >> 8, data.length & 0xff])
    : (() => {
      const b = Buffer.alloc(9)
      b[0] = 0x80 | 127
      b.writeBigUInt64BE(BigInt(data.length), 1)
      return b
    })()
  return Buffer.concat([Buffer.from([0x80 | opcode]), length, mask, Buffer.from(data.map((byte, i) => byte ^ mask[i % 4]!))])
}

/** The (unmasked) frames a server sent after its 101 head: opcode and payload. */
export const serverFrames = (body: string): Array<{ readonly opcode: number; readonly payload: Buffer }> => {
  const bytes = Buffer.from(body, "latin1")
  const frames: Array<{ opcode: number; payload: Buffer }> = []
  let i = 0
  while (i + 2 <= bytes.length) {
    const opcode = bytes[i]! & 0x0f
    let length = bytes[i + 1]! & 0x7f
    let offset = i + 2
    if (length === 126) {
      if (offset + 2 > bytes.length) break
      length = bytes.readUInt16BE(offset)
      offset += 2
    } else if (length === 127) {
      if (offset + 8 > bytes.length) break
      length = Number(bytes.readBigUInt64BE(offset))
      offset += 8
    }
    if (offset + length > bytes.length) break
    frames.push({ opcode, payload: bytes.subarray(offset, offset + length) })
    i = offset + length
  }
  return frames
}
