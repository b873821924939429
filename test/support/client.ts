// Helpers for running @tidings/client against real gateway nodes from Node: a WebSocket
// constructor (the `ws` package) with the node's CA and an Origin, a getTicket that asks the
// node's dev issuer and POST /v1/tickets, and a recorder of what the client reported.
import { WebSocket } from "ws"
import { createClient, TicketError } from "../../client/src/index.ts"
import type { Client, ClientState, ResetInfo, SocketFactory, StateDetail, TidingsEvent } from "../../client/src/types.ts"
import { https } from "./process.ts"
import { until } from "./wait.ts"

/** `ca` is read at each connect: a restarted dev node writes a new certificate. */
export const nodeSocket = (ca: () => string, origin: string): SocketFactory =>
  class extends WebSocket {
    constructor(url: string, protocols: Array<string>) {
      super(url, protocols, { ca: ca(), origin })
    }
  } as unknown as SocketFactory

/** A patient's or clinician's ticket from the node on `port`, as an app's backend call would get it. */
export const devTickets = (port: () => number, ca: () => string, role: "patient" | "clinician", ref: string) =>
  async (): Promise<string> => {
    const minted = await https(port(), ca(), "POST", "/dev/token", { role, ref })
    if (minted.status !== 200) throw new TicketError(minted.status)
    const issued = await https(port(), ca(), "POST", "/v1/tickets", {}, JSON.parse(minted.body).accessToken)
    if (issued.status !== 201) throw new TicketError(issued.status)
    return JSON.parse(issued.body).ticket
  }

export interface Recording {
  readonly events: Array<TidingsEvent>
  readonly resets: Array<ResetInfo>
  readonly errors: Array<string>
  readonly states: Array<{ readonly state: ClientState; readonly detail: StateDetail | undefined }>
  readonly seqs: () => Array<number>
  /** Waits (polling) until the condition on the recording holds. */
  readonly until: (what: string, check: () => boolean, withinMs?: number) => Promise<void>
}

export const record = (client: Client, channel: string): Recording => {
  const events: Array<TidingsEvent> = []
  const resets: Array<ResetInfo> = []
  const errors: Array<string> = []
  const states: Recording["states"] = []
  client.on("state", (state, detail) => states.push({ state, detail }))
  client.subscribe(channel, {
    onEvent: (event) => events.push(event),
    onReset: (info) => resets.push(info),
    onError: (code) => errors.push(code)
  })
  return {
    events, resets, errors, states,
    seqs: () => events.map((event) => event.seq),
    until: async (what, check, withinMs = 15_000) => {
      await until(async () => check(), withinMs, what)
    }
  }
}

/**
 * A client on the `ws` package, with positions in a storage the test can read: a channel's
 * position appears once the gateway answered `subscribed`, so a test knows when to publish.
 */
export const nodeClient = (options: {
  url: string
  ca: () => string
  origin: string
  getTicket: () => Promise<string>
}) => {
  const items = new Map<string, string>()
  const client = createClient({
    url: options.url,
    getTicket: options.getTicket,
    WebSocket: nodeSocket(options.ca, options.origin),
    shareAcrossTabs: false,
    storage: { getItem: (key) => items.get(key) ?? null, setItem: (key, value) => void items.set(key, value), removeItem: (key) => void items.delete(key) }
  })
  const subscribed = (channel: string) =>
    [...items.values()].some((value) => JSON.parse(value)[channel] !== undefined)
  return Object.assign(client, { subscribed })
}
