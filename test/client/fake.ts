// A fake gateway socket for the client's unit specs: each `new` is recorded, the test plays
// the server (open, frames, close) and reads what the client sent. Used with fake timers.
import { vi } from "vitest"
import { createClient } from "../../client/src/index.ts"
import type { ClientOptions, ClientState, StateDetail, StorageLike } from "../../client/src/types.ts"

export const URL = "wss://gateway.test/v1/ws"

export class FakeSocket {
  static made: Array<FakeSocket> = []
  readyState = 0
  onopen: ((event: unknown) => void) | null = null
  onmessage: ((event: { data: unknown }) => void) | null = null
  onclose: ((event: { code: number }) => void) | null = null
  onerror: ((event: unknown) => void) | null = null
  readonly sent: Array<any> = []
  closedWith: number | undefined
  readonly url: string
  readonly protocols: Array<string>
  constructor(url: string, protocols: Array<string>) {
    this.url = url
    this.protocols = protocols
    FakeSocket.made.push(this)
  }
  send(data: string) {
    this.sent.push(JSON.parse(data))
  }
  close(code?: number) {
    this.closedWith = code
  }
  // The server's side.
  open() {
    this.readyState = 1
    this.onopen?.({})
  }
  frame(frame: Record<string, unknown>) {
    this.onmessage?.({ data: JSON.stringify(frame) })
  }
  welcome(options: { expiresInMs?: number; idleTimeoutS?: number } = {}) {
    this.frame({
      type: "welcome",
      session: "ses_1",
      expiresAt: new Date(Date.now() + (options.expiresInMs ?? 3_600_000)).toISOString(),
      idleTimeoutS: options.idleTimeoutS ?? 900
    })
  }
  /** Open and welcome: the session is up. */
  accept(options?: { expiresInMs?: number; idleTimeoutS?: number }) {
    this.open()
    this.welcome(options)
  }
  serverClose(code: number) {
    this.readyState = 3
    this.onclose?.({ code })
  }
  sentOf(type: string) {
    return this.sent.filter((frame) => frame.type === type)
  }
}

export const memoryStorage = (): StorageLike & { items: Map<string, string> } => {
  const items = new Map<string, string>()
  return {
    items,
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key)
  }
}

/** A client on fake sockets, with its tickets counted and its state changes kept. */
export const start = async (options: Partial<ClientOptions> = {}) => {
  FakeSocket.made = []
  let tickets = 0
  const getTicket = vi.fn(async () => `ticket-${++tickets}`)
  const client = createClient({ url: URL, getTicket, WebSocket: FakeSocket, shareAcrossTabs: false, ...options })
  const states: Array<{ state: ClientState; detail: StateDetail | undefined }> = []
  client.on("state", (state, detail) => states.push({ state, detail }))
  await vi.advanceTimersByTimeAsync(0) // the ticket promise settles, the socket is made
  return {
    client,
    getTicket,
    states,
    /** The newest socket. */
    socket: () => FakeSocket.made.at(-1)!,
    sockets: () => FakeSocket.made.length
  }
}

export const event = (channel: string, seq: number, epoch = "ep1") => ({
  type: "event", channel, seq, epoch, id: `evt_${String(seq).padStart(8, "0")}`, kind: "appointment.updated",
  ref: "apt_00000001", at: "2026-01-01T00:00:00.000Z"
})
