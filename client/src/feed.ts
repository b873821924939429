// One tab's subscriptions: its handlers, its position per channel (kept in `storage` so a
// reload resumes), and the rules that make delivery exactly once and in order whatever the
// socket replays: a seq at or below the position is a duplicate; lost positions become onReset.
import type { Frame, Position } from "./link.ts"
import type { Handlers, ResetInfo, StorageLike, Subscription, TidingsEvent } from "./types.ts"

export interface FeedOutput {
  readonly want: (channel: string, pos: Position | undefined) => void
  readonly unwant: (channel: string) => void
}

interface Local {
  readonly handlers: Set<Handlers>
  /** Asked from a position and not answered yet: a seq past the position will come again in the replay. */
  pending: boolean
}

export type Feed = ReturnType<typeof makeFeed>

/** App code runs outside the client's loop: an exception in a handler is reported, not swallowed, and stops nothing. */
const call = <A>(handler: ((value: A) => void) | undefined, value: A) => {
  if (handler === undefined) return
  try {
    handler(value)
  } catch (error) {
    setTimeout(() => {
      throw error
    })
  }
}

export const makeFeed = (tab: string, key: string, storage: StorageLike | undefined, out: FeedOutput) => {
  const subs = new Map<string, Local>()
  const positions = new Map<string, Position>(load(storage, key))

  const save = () => {
    try {
      storage?.setItem(key, JSON.stringify(Object.fromEntries(positions)))
    } catch {
      // Storage full or disabled: positions live on in memory, a reload resets.
    }
  }

  const reset = (local: Local, info: ResetInfo) => {
    positions.set(info.channel, { seq: info.seq, epoch: info.epoch })
    save()
    for (const handlers of local.handlers) call(handlers.onReset, info)
  }

  const deliver = (local: Local, event: TidingsEvent) => {
    positions.set(event.channel, { seq: event.seq, epoch: event.epoch })
    save()
    for (const handlers of local.handlers) call(handlers.onEvent, event)
  }

  const onEvent = (local: Local, frame: Frame) => {
    const event: TidingsEvent = {
      channel: frame.channel, seq: frame.seq, epoch: frame.epoch, id: frame.id, kind: frame.kind, ref: frame.ref, at: frame.at
    }
    const pos = positions.get(event.channel)
    if (pos !== undefined && pos.epoch === event.epoch && event.seq <= pos.seq) return // delivered already
    // The gateway announces a new epoch (reset, subscribed) before its events: another epoch's event is stale.
    if (pos !== undefined && pos.epoch !== event.epoch) return
    if (pos !== undefined && event.seq > pos.seq + 1) {
      if (local.pending) return // the answer's replay brings it, in order
      reset(local, { channel: event.channel, epoch: event.epoch, seq: event.seq - 1, reason: "gap" })
    }
    deliver(local, event)
  }

  const onSubscribed = (local: Local, frame: Frame) => {
    local.pending = false
    const pos = positions.get(frame.channel)
    // What the gateway's stream now covers: everything after `since` if recovered, else after `seq`.
    const base: number = frame.recovered && typeof frame.since === "number" ? frame.since : frame.seq
    if (pos === undefined) {
      // A first subscription: the app loads the state as it mounts; nothing to refetch.
      positions.set(frame.channel, { seq: base, epoch: frame.epoch })
      return save()
    }
    if (pos.epoch === frame.epoch && pos.seq >= base) return
    reset(local, { channel: frame.channel, epoch: frame.epoch, seq: base, reason: "not_recovered" })
  }

  const announce = (channel: string, local: Local) => {
    const pos = positions.get(channel)
    local.pending = pos !== undefined
    out.want(channel, pos)
  }

  return {
    subscribe: (channel: string, handlers: Handlers): Subscription => {
      let local = subs.get(channel)
      const handle = { ...handlers }
      if (local === undefined) {
        local = { handlers: new Set([handle]), pending: false }
        subs.set(channel, local)
        announce(channel, local)
      } else {
        local.handlers.add(handle)
      }
      return {
        channel,
        unsubscribe: () => {
          const current = subs.get(channel)
          if (current === undefined || !current.handlers.delete(handle) || current.handlers.size > 0) return
          subs.delete(channel)
          positions.delete(channel)
          save()
          out.unwant(channel)
        }
      }
    },
    /** A new socket holder asks every tab what it wants, from where. */
    announce: () => {
      for (const [channel, local] of subs) announce(channel, local)
    },
    channels: () => [...subs.keys()],
    frame: (frame: Frame) => {
      const local = typeof frame.channel === "string" ? subs.get(frame.channel) : undefined
      if (local === undefined || (frame.to !== undefined && frame.to !== tab)) return
      switch (frame.type) {
        case "event":
          return onEvent(local, frame)
        case "subscribed":
          return onSubscribed(local, frame)
        case "reset":
          local.pending = false
          return reset(local, { channel: frame.channel, epoch: frame.epoch, seq: frame.seq, reason: "reset" })
        case "error":
          if (frame.code === "forbidden" || frame.code === "bad_request") subs.delete(frame.channel)
          for (const handlers of local.handlers) call(handlers.onError, frame.code)
          return
      }
    }
  }
}

const load = (storage: StorageLike | undefined, key: string): Array<[string, Position]> => {
  try {
    const saved: unknown = JSON.parse(storage?.getItem(key) ?? "{}")
    return Object.entries(saved as Record<string, Position>).filter(([, pos]) =>
      typeof pos?.seq === "number" && typeof pos.epoch === "string"
    )
  } catch {
    return []
  }
}
