// A WebSocket client of the fault-injection suite: one session over real wss:// with the
// cluster's CA, which keeps every frame it got with the time it got it, and how it closed.
import { WebSocket } from "ws"
import { ANSWER_MS } from "./bounds.ts"
import { ORIGIN } from "./cluster.ts"

export interface Received {
  readonly at: number
  readonly frame: any
}

export interface Closed {
  readonly at: number
  readonly code: number
}

export interface SessionClient {
  readonly received: Array<Received>
  readonly closed: () => Closed | undefined
  readonly send: (message: unknown) => void
  /** The first frame (already received or to come) that matches, or an error after `timeoutMs`. */
  readonly next: (match: (frame: any) => boolean, timeoutMs?: number) => Promise<any>
  /** Closes from the client side and waits for the close to complete. */
  readonly close: () => Promise<void>
  /** Resolves once the socket is closed, whoever closed it. */
  readonly whenClosed: Promise<Closed>
}

/** Opens a session with a ticket; resolves once the socket is open (the server may still close it). */
export const connect = (port: number, ca: string, ticket: string): Promise<SessionClient> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}/v1/ws`, ["tidings.v1", `ticket.${ticket}`], { ca, origin: ORIGIN })
    const received: Array<Received> = []
    const waiters = new Set<{ match: (frame: any) => boolean; resolve: (frame: any) => void }>()
    let closed: Closed | undefined
    const whenClosed = new Promise<Closed>((done) =>
      ws.once("close", (code) => {
        closed = { at: Date.now(), code }
        done(closed)
      })
    )
    ws.on("message", (data) => {
      const frame = JSON.parse(data.toString())
      received.push({ at: Date.now(), frame })
      for (const waiter of waiters) {
        if (waiter.match(frame)) {
          waiters.delete(waiter)
          waiter.resolve(frame)
        }
      }
    })
    ws.on("error", () => undefined)
    const failed = (error: Error) => reject(error)
    ws.once("error", failed)
    ws.once("open", () => {
      ws.off("error", failed)
      resolve({
        received,
        closed: () => closed,
        send: (message) => ws.send(JSON.stringify(message)),
        next: (match, timeoutMs = ANSWER_MS) => {
          const seen = received.find((r) => match(r.frame))
          if (seen !== undefined) return Promise.resolve(seen.frame)
          return new Promise((resolve, reject) => {
            const waiter = { match, resolve: (frame: any) => (clearTimeout(timer), resolve(frame)) }
            const timer = setTimeout(() => {
              waiters.delete(waiter)
              reject(new Error(`no matching frame within ${timeoutMs} ms (closed: ${closed?.code ?? "no"})`))
            }, timeoutMs)
            waiters.add(waiter)
          })
        },
        close: async () => {
          if (closed === undefined) ws.close(1000)
          await whenClosed
        },
        whenClosed
      })
    })
  })
