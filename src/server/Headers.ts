// The security headers every answer carries (contract §2), in one table: the routes, the
// upgrade gate's refusals and the answers to requests Node's parser refuses all take them
// from here, so no answer can miss one.
import { STATUS_CODES } from "node:http"

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "strict-transport-security": "max-age=31536000; includeSubDomains",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY"
}

const HEAD_LINES = Object.entries(SECURITY_HEADERS).map(([name, value]) => `${name}: ${value}\r\n`).join("")

/** A whole bodiless HTTP/1.1 answer for a raw socket, closing the connection. */
export const rawAnswer = (status: number): string =>
  `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}\r\n` +
  "connection: close\r\n" +
  HEAD_LINES +
  "content-length: 0\r\n\r\n"

/** What Node itself would answer for a request its parser refused (see socketOnError). */
const PARSER_STATUS: Readonly<Record<string, number>> = {
  HPE_HEADER_OVERFLOW: 431,
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 413,
  ERR_HTTP_REQUEST_TIMEOUT: 408
}

/**
 * The https server's `clientError`: for a request Node's HTTP parser refused, the status Node
 * would send (400, 408, 413, 431) with the security headers its own answer lacks, then the
 * connection is cut, as Node would. TLS failures (a handshake that timed out or failed) and
 * resets get no answer, and neither does a connection that already sent response bytes.
 */
export const onClientError = (
  error: Error & { readonly code?: string },
  socket: {
    readonly writable: boolean
    readonly bytesWritten?: number
    end(data: string, done: () => void): void
    destroy(): void
  }
) => {
  const code = error.code ?? ""
  const http = code.startsWith("HPE_") || code === "ERR_HTTP_REQUEST_TIMEOUT"
  if (!http || !socket.writable || (socket.bytesWritten ?? 0) > 0) return socket.destroy()
  socket.end(rawAnswer(PARSER_STATUS[code] ?? 400), () => socket.destroy())
}
