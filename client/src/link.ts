// The one socket: gets a ticket, connects, waits for `welcome`, (re)subscribes the wanted
// channels from their positions, refreshes the session, pings only after user activity, and
// follows the gateway's close table (src/domain/Close.ts, bundled in at build time).
import { actionForClose, actionForTicketStatus } from "../../src/domain/Close.ts"
import { delayMs } from "./backoff.ts"
import type { ClientAction, ClientState, SocketFactory, SocketLike, StateDetail } from "./types.ts"

export interface Position {
  readonly seq: number
  readonly epoch: string
}

/** What the link passes on to the subscriptions: server frames, and `subscribed` with the `since` it asked for. */
export type Frame = Record<string, any> & { readonly type: string }

export interface LinkOutput {
  readonly frame: (frame: Frame) => void
  readonly state: (state: ClientState, detail: StateDetail | undefined) => void
}

export interface LinkOptions {
  readonly url: string
  readonly getTicket: () => Promise<string>
  readonly WebSocket: SocketFactory
}

/** Three upgrades refused in a row with a valid ticket in hand: the gateway refuses this page (Origin), not an outage. */
export const HANDSHAKE_FAILURES = 3
/**
 * A refusal (403 from the gateway or a proxy) comes back at once; an upgrade that fails later
 * is an overloaded or restarting gateway (a reconnect storm: queued connects, handshake
 * timeouts) and is retried, never counted toward stopping for good.
 */
export const HANDSHAKE_REFUSAL_MS = 5_000
/** `reauthenticate` closes in a row (no `welcome` between) before the client stops and reports. */
export const REAUTHENTICATIONS = 2
export const REFRESH_LEAD_MS = 60_000
export const PING_EVERY_MAX_MS = 30_000

interface Held {
  readonly tabs: Set<string>
  pos: Position | undefined
  /** The id of the subscribe awaiting its answer. */
  pending: string | undefined
  retries: number
  retry: ReturnType<typeof setTimeout> | undefined
}

export type Link = ReturnType<typeof makeLink>

export const makeLink = (options: LinkOptions, out: LinkOutput) => {
  const channels = new Map<string, Held>()
  const asked = new Map<string, { channel: string; since: number | undefined }>()
  let socket: SocketLike | undefined
  let state: ClientState = "connecting"
  let detail: StateDetail | undefined
  let generation = 0
  let closed = false
  let idleStopped = false
  let attempt = 0
  let reauths = 0
  let refusedHandshakes = 0
  let ids = 0
  let expiresAt = 0
  let idleMs = 900_000
  let lastActiveAt = Date.now()
  let lastPingAt = 0
  let active = false
  let retryTimer: ReturnType<typeof setTimeout> | undefined
  let refreshTimer: ReturnType<typeof setTimeout> | undefined
  let pingTimer: ReturnType<typeof setTimeout> | undefined

  const setState = (next: ClientState, why?: StateDetail) => {
    state = next
    detail = why
    out.state(next, why)
  }
  const send = (frame: Record<string, unknown>) => socket?.send(JSON.stringify(frame))
  const nextId = (prefix: string) => prefix + ++ids
  const open = () => state === "open" && socket !== undefined

  const clearSession = () => {
    clearTimeout(refreshTimer)
    clearTimeout(pingTimer)
    refreshTimer = pingTimer = undefined
    for (const held of channels.values()) {
      clearTimeout(held.retry)
      held.pending = held.retry = undefined
    }
    asked.clear()
  }

  const subscribe = (channel: string) => {
    const held = channels.get(channel)
    if (held === undefined || !open()) return
    const id = nextId("s")
    held.pending = id
    asked.set(id, { channel, since: held.pos?.seq })
    send({ type: "subscribe", id, channel, ...(held.pos === undefined ? {} : { since: held.pos.seq, epoch: held.pos.epoch }) })
  }

  const stop = (why: StateDetail) => {
    clearTimeout(retryTimer)
    setState("stopped", why)
  }

  /** After a close or a failed ticket: what the table says, with the client's own two limits. */
  const after = (code: number, action: ClientAction, slow: boolean, cause?: StateDetail["cause"]) => {
    if (closed) return
    if (action === "stop") {
      idleStopped = code === 4410
      return stop(cause === undefined ? { code, action } : { code, action, cause })
    }
    if (action === "reauthenticate") {
      if (++reauths > REAUTHENTICATIONS) return stop({ code, action: "stop", cause: "reauthenticate_limit" })
      setState("reconnecting", { code, action })
      return void connect()
    }
    setState("reconnecting", cause === undefined ? { code, action } : { code, action, cause })
    retryTimer = setTimeout(connect, delayMs(attempt++, slow))
  }

  const connect = async (): Promise<void> => {
    const mine = ++generation
    clearTimeout(retryTimer)
    let ticket: string
    try {
      ticket = await options.getTicket()
    } catch (error) {
      if (mine !== generation || closed) return
      const status = (error as { status?: unknown } | null)?.status
      const { action, slow } = typeof status === "number" ? actionForTicketStatus(status) : { action: "retry" as const, slow: false }
      return after(0, action, slow, "ticket")
    }
    if (mine !== generation || closed) return
    const ws = new options.WebSocket(options.url, ["tidings.v1", "ticket." + ticket])
    const dialedAt = Date.now()
    let opened = false
    socket = ws
    ws.onopen = () => {
      opened = true
      refusedHandshakes = 0
    }
    ws.onerror = () => {} // a close event always follows; it carries the code
    ws.onmessage = (message) => {
      if (socket !== ws || typeof message.data !== "string") return
      let frame: Frame
      try {
        frame = JSON.parse(message.data)
      } catch {
        return
      }
      if (frame !== null && typeof frame === "object") onFrame(frame)
    }
    ws.onclose = (event) => {
      if (socket !== ws) return
      socket = undefined
      clearSession()
      if (!opened) {
        refusedHandshakes = Date.now() - dialedAt <= HANDSHAKE_REFUSAL_MS ? refusedHandshakes + 1 : 0
        if (refusedHandshakes >= HANDSHAKE_FAILURES) return stop({ code: event.code, action: "stop", cause: "handshake" })
      }
      const { action, slow } = actionForClose(event.code)
      after(event.code, action, slow)
    }
  }

  const scheduleRefresh = () => {
    clearTimeout(refreshTimer)
    const left = expiresAt - Date.now()
    // A minute ahead; a session shorter than two minutes is refreshed halfway instead.
    refreshTimer = setTimeout(refresh, Math.max(0, left > 2 * REFRESH_LEAD_MS ? left - REFRESH_LEAD_MS : left / 2))
  }

  const refresh = async () => {
    // An idle user's session is left to end: refreshing must never stand in for activity.
    if (Date.now() - lastActiveAt > idleMs) return
    const ws = socket
    try {
      const ticket = await options.getTicket()
      if (socket === ws && open()) send({ type: "refresh", id: nextId("r"), ticket })
    } catch {
      // The session runs out (4408) and the close table reauthenticates.
    }
  }

  const schedulePing = () => {
    if (!active || pingTimer !== undefined || !open()) return
    const every = Math.min(PING_EVERY_MAX_MS, idleMs / 10)
    pingTimer = setTimeout(() => {
      pingTimer = undefined
      if (!active || !open()) return
      active = false
      lastPingAt = Date.now()
      send({ type: "ping", id: nextId("p") })
    }, Math.max(0, lastPingAt + every - Date.now()))
  }

  const onFrame = (frame: Frame) => {
    switch (frame.type) {
      case "welcome": {
        attempt = reauths = 0
        expiresAt = Date.parse(frame.expiresAt)
        if (typeof frame.idleTimeoutS === "number") idleMs = frame.idleTimeoutS * 1000
        // The session's start is the server's last activity: no ping owed for what came before.
        active = false
        lastPingAt = Date.now()
        setState("open")
        scheduleRefresh()
        for (const channel of channels.keys()) subscribe(channel)
        return
      }
      case "subscribed": {
        const request = asked.get(frame.id)
        const held = channels.get(frame.channel)
        if (request === undefined || held === undefined || held.pending !== frame.id) return
        asked.delete(frame.id)
        held.pending = undefined
        held.retries = 0
        if (!frame.recovered) held.pos = { seq: frame.seq, epoch: frame.epoch }
        else if (held.pos !== undefined) held.pos = { seq: held.pos.seq, epoch: frame.epoch }
        return out.frame({ ...frame, since: request.since })
      }
      case "event": {
        const held = channels.get(frame.channel)
        if (held === undefined) return
        if (held.pos !== undefined && held.pos.epoch === frame.epoch && frame.seq <= held.pos.seq) return
        held.pos = { seq: frame.seq, epoch: frame.epoch }
        return out.frame(frame)
      }
      case "reset": {
        const held = channels.get(frame.channel)
        if (held === undefined) return
        held.pos = { seq: frame.seq, epoch: frame.epoch }
        return out.frame(frame)
      }
      case "refreshed":
        expiresAt = Date.parse(frame.expiresAt)
        return scheduleRefresh()
      case "error":
        return onError(frame)
      default:
        return // pong, unsubscribed, and frame types of later versions
    }
  }

  const onError = (frame: Frame) => {
    const request = frame.id === undefined ? undefined : asked.get(frame.id)
    const channel: unknown = request?.channel ?? frame.channel
    const held = typeof channel === "string" ? channels.get(channel) : undefined
    if (held === undefined) return // a refused refresh (the session then ends) or a message-rate answer
    if (request !== undefined) asked.delete(frame.id)
    held.pending = undefined
    out.frame({ type: "error", code: frame.code, channel })
    if (frame.code === "rate_limited" || frame.code === "unavailable") {
      held.retry = setTimeout(() => subscribe(channel as string), delayMs(held.retries++, frame.code === "rate_limited"))
    } else {
      channels.delete(channel as string) // forbidden or bad_request: the gateway holds no subscription
    }
  }

  const unwant = (tab: string, channel: string) => {
    const held = channels.get(channel)
    if (held === undefined || !held.tabs.delete(tab) || held.tabs.size > 0) return
    clearTimeout(held.retry)
    channels.delete(channel)
    if (open()) send({ type: "unsubscribe", id: nextId("u"), channel })
  }

  return {
    get state() {
      return state
    },
    get detail() {
      return detail
    },
    start: () => void connect(),
    /** A tab wants a channel, from its position: a position older than the link's asks the gateway again. */
    want: (tab: string, channel: string, pos: Position | undefined) => {
      const held = channels.get(channel)
      if (held === undefined) {
        channels.set(channel, { tabs: new Set([tab]), pos, pending: undefined, retries: 0, retry: undefined })
        return subscribe(channel)
      }
      held.tabs.add(tab)
      if (pos !== undefined && (held.pos === undefined || pos.epoch !== held.pos.epoch || pos.seq < held.pos.seq)) {
        held.pos = pos
        return subscribe(channel)
      }
      // Already flowing: tell this tab (only) where the stream stands, as `subscribed` would.
      if (held.pending === undefined && held.pos !== undefined && open()) {
        out.frame({ type: "subscribed", to: tab, channel, seq: held.pos.seq, epoch: held.pos.epoch, recovered: false })
      }
    },
    unwant,
    /** A tab closed: what only it wanted is unsubscribed. */
    dropTab: (tab: string) => {
      for (const [channel, held] of [...channels]) if (held.tabs.has(tab)) unwant(tab, channel)
    },
    markActive: () => {
      lastActiveAt = Date.now()
      if (idleStopped && !closed) {
        idleStopped = false
        setState("connecting")
        return void connect()
      }
      active = true
      schedulePing()
    },
    close: () => {
      if (closed) return
      closed = true
      generation++
      const ws = socket
      socket = undefined
      clearSession()
      ws?.close(1000, "normal")
      stop({ code: 1000, action: "stop", cause: "closed" })
    }
  }
}
