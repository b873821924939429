// The WebSocket gate (contract §3), a flat list of early returns before any upgrade:
// path → Origin (403) → `tidings.v1` subprotocol (400) → upgrade. The ticket rides in the
// subprotocol list and is never echoed; checking it is the session's first step.
import type { IncomingMessage } from "node:http"
import type { Duplex } from "node:stream"
import type { WebSocket, WebSocketServer } from "ws"
import { SUBPROTOCOL, TICKET_PROTOCOL_PREFIX } from "../domain/Limits.ts"

export const WS_PATH = "/v1/ws"

export type UpgradeRejection = "path" | "origin" | "subprotocol"

const STATUS_TEXT = { 400: "Bad Request", 403: "Forbidden", 404: "Not Found" } as const

/** A plain HTTP answer on the raw socket; no WebSocket is made. */
const reject = (socket: Duplex, status: keyof typeof STATUS_TEXT) => {
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\n` +
      "Connection: close\r\n" +
      "Strict-Transport-Security: max-age=31536000; includeSubDomains\r\n" +
      "Cache-Control: no-store\r\n" +
      "X-Content-Type-Options: nosniff\r\n" +
      "Content-Length: 0\r\n\r\n"
  )
}

const protocolsOf = (header: string | undefined): Array<string> =>
  header === undefined ? [] : header.split(",").map((p) => p.trim()).filter((p) => p.length > 0)

export interface Accepted {
  readonly ws: WebSocket
  readonly origin: string
  readonly peer: string
  readonly ticket: string | undefined
}

export const makeHandler = (options: {
  readonly allowedOrigins: ReadonlySet<string>
  readonly wss: WebSocketServer
  readonly onAccepted: (accepted: Accepted) => void
  readonly onRejected: (reason: UpgradeRejection, origin: string | undefined) => void
}) =>
(request: IncomingMessage, socket: Duplex, head: Buffer) => {
  socket.on("error", () => socket.destroy())
  const path = (request.url ?? "/").split("?", 1)[0]
  if (path !== WS_PATH) {
    options.onRejected("path", undefined)
    return reject(socket, 404)
  }
  const origin = request.headers.origin
  // A missing or `null` Origin is never on the list, whatever the list says.
  if (origin === undefined || origin === "null" || !options.allowedOrigins.has(origin)) {
    options.onRejected("origin", undefined)
    return reject(socket, 403)
  }
  const protocols = protocolsOf(request.headers["sec-websocket-protocol"])
  if (!protocols.includes(SUBPROTOCOL)) {
    options.onRejected("subprotocol", origin)
    return reject(socket, 400)
  }
  const ticket = protocols.find((p) => p.startsWith(TICKET_PROTOCOL_PREFIX))?.slice(TICKET_PROTOCOL_PREFIX.length)
  const peer = request.socket.remoteAddress ?? "unknown"
  options.wss.handleUpgrade(request, socket, head, (ws) => options.onAccepted({ ws, origin, peer, ticket }))
}
