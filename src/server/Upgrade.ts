// The WebSocket gate (contract §3), a flat list of early returns before any upgrade:
// path → Origin (403) → a well-formed handshake (400) → `tidings.v1` subprotocol (400) →
// upgrade. Every refusal is ours (security headers, audited), none is left to `ws`. The ticket
// rides in the subprotocol list and is never echoed; checking it is the session's first step.
import type { IncomingMessage } from "node:http"
import type { Duplex } from "node:stream"
import type { WebSocket, WebSocketServer } from "ws"
import { SUBPROTOCOL, TICKET_PROTOCOL_PREFIX } from "../domain/Limits.ts"
import type * as Metrics from "../programs/Metrics.ts"
import { rawAnswer } from "./Headers.ts"

export const WS_PATH = "/v1/ws"

export type UpgradeRejection = Metrics.UpgradeRejection

/** A plain HTTP answer on the raw socket, with every security header; no WebSocket is made. */
const reject = (socket: Duplex, status: 400 | 403 | 404) => {
  socket.end(rawAnswer(status))
}

const protocolsOf = (header: string | undefined): Array<string> =>
  header === undefined ? [] : header.split(",").map((p) => p.trim()).filter((p) => p.length > 0)

/** RFC 7230 token: what a subprotocol name may be. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/**
 * What `ws` would otherwise refuse with its own bare answer: RFC 6455 §4.2.1's GET, Upgrade,
 * version 13, a 16-byte key, and a subprotocol list of distinct tokens.
 */
const wellFormed = (request: IncomingMessage): boolean => {
  const key = request.headers["sec-websocket-key"]
  const header = request.headers["sec-websocket-protocol"]
  const entries = header === undefined ? [] : header.split(",").map((p) => p.trim())
  return request.method === "GET" &&
    request.headers.upgrade?.toLowerCase() === "websocket" &&
    request.headers["sec-websocket-version"] === "13" &&
    typeof key === "string" && /^[A-Za-z0-9+/]{22}==$/.test(key) &&
    entries.every((p) => TOKEN.test(p)) &&
    new Set(entries).size === entries.length
}

export interface Accepted {
  readonly ws: WebSocket
  readonly origin: string
  readonly peer: string
  readonly ticket: string | undefined
  /** performance.now() when the upgrade request came in: the handshake duration starts here. */
  readonly startedAt: number
}

// Module-level: the listener stays on the socket for its whole life.
function destroy(this: Duplex) {
  this.destroy()
}

export const makeHandler = (options: {
  readonly allowedOrigins: ReadonlySet<string>
  readonly wss: WebSocketServer
  readonly onAccepted: (accepted: Accepted) => void
  /** `origin` only once it is on the allowlist; `peer` is the raw address (audited as a pseudonym). */
  readonly onRejected: (reason: UpgradeRejection, origin: string | undefined, peer: string) => void
}) =>
(request: IncomingMessage, socket: Duplex, head: Buffer) => {
  const startedAt = performance.now()
  socket.on("error", destroy)
  const peer = request.socket.remoteAddress ?? "unknown"
  const path = (request.url ?? "/").split("?", 1)[0]
  if (path !== WS_PATH) {
    options.onRejected("path", undefined, peer)
    return reject(socket, 404)
  }
  const origin = request.headers.origin
  // A missing or `null` Origin is never on the list, whatever the list says.
  if (origin === undefined || origin === "null" || !options.allowedOrigins.has(origin)) {
    options.onRejected("origin", undefined, peer)
    return reject(socket, 403)
  }
  if (!wellFormed(request)) {
    options.onRejected("handshake", origin, peer)
    return reject(socket, 400)
  }
  const protocols = protocolsOf(request.headers["sec-websocket-protocol"])
  if (!protocols.includes(SUBPROTOCOL)) {
    options.onRejected("subprotocol", origin, peer)
    return reject(socket, 400)
  }
  const ticket = protocols.find((p) => p.startsWith(TICKET_PROTOCOL_PREFIX))?.slice(TICKET_PROTOCOL_PREFIX.length)
  options.wss.handleUpgrade(request, socket, head, (ws) => options.onAccepted({ ws, origin, peer, ticket, startedAt }))
}
