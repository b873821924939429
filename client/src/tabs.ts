// One socket per browser: the tab holding the Web Lock runs the link and relays every frame
// over a BroadcastChannel; the others send it what they want. Each tab keeps its own positions
// (feed.ts), so when the holder's tab closes the next one asks again from them and loses nothing.
import type { Feed } from "./feed.ts"
import { type Link, type LinkOptions, makeLink, type Position } from "./link.ts"
import type { ClientState, StateDetail } from "./types.ts"

type Message =
  | { readonly t: "want"; readonly from: string; readonly channel: string; readonly pos: Position | undefined }
  | { readonly t: "unwant"; readonly from: string; readonly channel: string }
  | { readonly t: "bye"; readonly from: string }
  | { readonly t: "active" }
  | { readonly t: "hello" }
  | { readonly t: "leader" }
  | { readonly t: "frame"; readonly frame: Record<string, any> & { type: string } }
  | { readonly t: "state"; readonly state: ClientState; readonly detail: StateDetail | undefined }

interface Locks {
  request(name: string, callback: () => Promise<void>): Promise<unknown>
}

/** Whether this environment can share (Web Locks and BroadcastChannel both present). */
export const canShare = (): boolean =>
  typeof BroadcastChannel === "function" &&
  typeof (globalThis as { navigator?: { locks?: Locks } }).navigator?.locks?.request === "function"

export const makeShared = (
  options: LinkOptions,
  tab: string,
  feed: () => Feed,
  setState: (state: ClientState, detail: StateDetail | undefined) => void
) => {
  const name = "tidings:" + options.url
  const channel = new BroadcastChannel(name)
  const post = (message: Message) => channel.postMessage(message)
  let link: Link | undefined
  let release: (() => void) | undefined
  let closed = false

  const atLeader = (message: Message) => {
    if (link === undefined) return
    switch (message.t) {
      case "want":
        return link.want(message.from, message.channel, message.pos)
      case "unwant":
        return link.unwant(message.from, message.channel)
      case "bye":
        return link.dropTab(message.from)
      case "active":
        return link.markActive()
      case "hello":
        return post({ t: "state", state: link.state, detail: link.detail })
    }
  }

  channel.onmessage = ({ data }: { data: Message }) => {
    if (link !== undefined) return atLeader(data)
    if (data.t === "frame") feed().frame(data.frame)
    else if (data.t === "state") setState(data.state, data.detail)
    else if (data.t === "leader") feed().announce() // a new holder: tell it where this tab stands
  }

  const lead = () => {
    const mine = makeLink(options, {
      frame: (frame) => {
        feed().frame(frame)
        post({ t: "frame", frame })
      },
      state: (state, detail) => {
        setState(state, detail)
        post({ t: "state", state, detail })
      }
    })
    link = mine
    post({ t: "leader" })
    feed().announce()
    mine.start()
  }

  const locks = (globalThis as unknown as { navigator: { locks: Locks } }).navigator.locks
  // Held until this tab closes (the browser then releases it) or close() is called.
  void locks.request(name, () =>
    new Promise<void>((resolve) => {
      release = resolve
      if (closed) return resolve()
      lead()
    })
  )
  post({ t: "hello" })

  const toLeader = (message: Message) => (link !== undefined ? atLeader(message) : post(message))
  // Best effort: a follower that vanishes without this only costs the holder a few extra frames.
  ;(globalThis as { addEventListener?: (type: string, listener: () => void) => void }).addEventListener?.(
    "pagehide",
    () => link === undefined && post({ t: "bye", from: tab })
  )

  return {
    want: (channelName: string, pos: Position | undefined) => toLeader({ t: "want", from: tab, channel: channelName, pos }),
    unwant: (channelName: string) => toLeader({ t: "unwant", from: tab, channel: channelName }),
    markActive: () => toLeader({ t: "active" }),
    close: () => {
      if (closed) return
      closed = true
      if (link === undefined) post({ t: "bye", from: tab })
      // The holder hands over: its link closes quietly and the next tab in line takes the lock.
      link?.close()
      link = undefined
      release?.()
      channel.close()
    }
  }
}
