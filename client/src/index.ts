// @tidings/client: createClient() ties one tab's subscriptions (feed.ts) to a socket, its own
// (link.ts) or the one another tab holds (tabs.ts), and reports the state; watchActivity()
// is the opt-in helper that turns user input into markActive().
import { makeFeed } from "./feed.ts"
import { type Link, makeLink, type Position } from "./link.ts"
import { canShare, makeShared } from "./tabs.ts"
import type { Client, ClientOptions, ClientState, SocketFactory, StateDetail } from "./types.ts"

export type * from "./types.ts"

/** Throw this from getTicket with the HTTP status of a refused `POST /v1/tickets`: the client acts on the status. */
export class TicketError extends Error {
  readonly status: number
  constructor(status: number) {
    super("ticket request failed with " + status)
    this.status = status
  }
}

export const createClient = (options: ClientOptions): Client => {
  const WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: SocketFactory }).WebSocket
  if (WebSocketImpl === undefined) throw new Error("no WebSocket: pass options.WebSocket")
  const linkOptions = { url: options.url, getTicket: options.getTicket, WebSocket: WebSocketImpl }
  const tab = Math.random().toString(36).slice(2)
  const listeners = new Set<(state: ClientState, detail: StateDetail | undefined) => void>()
  let state: ClientState = "connecting"
  const setState = (next: ClientState, detail: StateDetail | undefined) => {
    state = next
    for (const listener of listeners) listener(next, detail)
  }

  const share = options.shareAcrossTabs ?? "document" in globalThis
  let socket: {
    want: (channel: string, pos: Position | undefined) => void
    unwant: (channel: string) => void
    markActive: () => void
    close: () => void
  }
  let link: Link | undefined
  const feed = makeFeed(tab, "tidings:positions:" + options.url, options.storage, {
    want: (channel, pos) => socket.want(channel, pos),
    unwant: (channel) => socket.unwant(channel)
  })
  if (share && canShare()) {
    socket = makeShared(linkOptions, tab, () => feed, setState)
  } else {
    const own = makeLink(linkOptions, { frame: feed.frame, state: setState })
    link = own
    socket = {
      want: (channel, pos) => own.want(tab, channel, pos),
      unwant: (channel) => own.unwant(tab, channel),
      markActive: own.markActive,
      close: own.close
    }
    own.start()
  }

  return {
    get state() {
      return state
    },
    subscribe: feed.subscribe,
    markActive: () => socket.markActive(),
    close: () => {
      socket.close()
      // A follower's close ends only this tab's client; say so to its own listeners.
      if (link === undefined) setState("stopped", { code: 1000, action: "stop", cause: "closed" })
    },
    on: (_type, listener) => {
      listeners.add(listener)
      return () => listeners.delete(listener)
    }
  }
}

const ACTIVITY = ["pointerdown", "keydown", "visibilitychange"] as const

/**
 * Opt-in: calls client.markActive() on pointerdown, keydown and the page becoming visible.
 * Returns the function that detaches it. Without it (or your own calls), the client sends no
 * ping, and the gateway's idle logoff (4410) happens as configured.
 */
export const watchActivity = (client: Pick<Client, "markActive">, target: EventTarget = globalThis as unknown as EventTarget) => {
  const onActivity = (event: Event) => {
    if (event.type !== "visibilitychange" || (globalThis as { document?: { visibilityState: string } }).document?.visibilityState === "visible") {
      client.markActive()
    }
  }
  for (const type of ACTIVITY) target.addEventListener(type, onActivity, { passive: true, capture: true })
  return () => {
    for (const type of ACTIVITY) target.removeEventListener(type, onActivity, { capture: true })
  }
}
