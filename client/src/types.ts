// The public types of @tidings/client, and nothing else: the build copies this file into
// dist/tidings-client.d.ts, so it must stay self-contained (no imports, no values).

/** What the client does after a close; the same words as the gateway's table (src/domain/Close.ts). */
export type ClientAction = "retry" | "reauthenticate" | "stop"

export type ClientState = "connecting" | "open" | "reconnecting" | "stopped"

/**
 * Why the state changed: the close code (0 when no socket was involved, e.g. getTicket failed)
 * and the action taken for it. `cause` says more when the client gave up on its own.
 */
export interface StateDetail {
  readonly code: number
  readonly action: ClientAction
  readonly cause?: "ticket" | "handshake" | "reauthenticate_limit" | "closed"
}

/** One `event` frame: opaque ids only; fetch the changed thing from your own API. */
export interface TidingsEvent {
  readonly channel: string
  readonly seq: number
  readonly epoch: string
  readonly id: string
  readonly kind: string
  readonly ref: string
  readonly at: string
}

/** Positions were lost: refetch the channel's state, then carry on with live events. */
export interface ResetInfo {
  readonly channel: string
  readonly epoch: string
  /** Live events follow from seq + 1. */
  readonly seq: number
  /** `reset`: the server said so; `not_recovered`: a resume found history gone; `gap`: a seq was missing. */
  readonly reason: "reset" | "not_recovered" | "gap"
}

export type ErrorCode = "forbidden" | "rate_limited" | "bad_request" | "unavailable" | (string & {})

export interface Handlers {
  /** Exactly once per seq of an epoch, in order. */
  readonly onEvent?: (event: TidingsEvent) => void
  readonly onReset?: (info: ResetInfo) => void
  /** `forbidden` ends the subscription; `rate_limited` and `unavailable` are retried. */
  readonly onError?: (code: ErrorCode) => void
}

export interface Subscription {
  readonly channel: string
  unsubscribe(): void
}

/** The parts of a WebSocket the client uses (the browser's, Node's global, or `ws`). */
export interface SocketLike {
  readonly readyState: number
  onopen: ((event: unknown) => void) | null
  onmessage: ((event: { readonly data: unknown }) => void) | null
  onclose: ((event: { readonly code: number }) => void) | null
  onerror: ((event: unknown) => void) | null
  send(data: string): void
  close(code?: number, reason?: string): void
}

export type SocketFactory = new (url: string, protocols: Array<string>) => SocketLike

/** The parts of Web Storage the client uses (sessionStorage, localStorage or your own). */
export interface StorageLike {
  getItem(key: string): string | null
  setItem(key: string, value: string): void
  removeItem(key: string): void
}

export interface ClientOptions {
  /** `wss://…/v1/ws` */
  readonly url: string
  /** Your app's call to `POST /v1/tickets`; throw a `TicketError` with the HTTP status when it is refused. */
  readonly getTicket: () => Promise<string>
  /** Where positions are kept, so a reload resumes instead of resetting (e.g. sessionStorage). */
  readonly storage?: StorageLike
  /** One socket per browser for all tabs of this origin (Web Locks + BroadcastChannel). Default: true in browsers. */
  readonly shareAcrossTabs?: boolean
  /** The WebSocket constructor; default: the global one. */
  readonly WebSocket?: SocketFactory
}

export interface Client {
  readonly state: ClientState
  subscribe(channel: string, handlers: Handlers): Subscription
  /** The user did something: allows one `ping`, and restarts a client stopped by idle logoff (4410). */
  markActive(): void
  close(): void
  on(type: "state", listener: (state: ClientState, detail: StateDetail | undefined) => void): () => void
}
