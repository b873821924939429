// What this process sends to one Redis port: every socket write (ioredis writes a command, or an
// auto-pipelined batch, with one `write`, so a write is one round trip's request) and the
// commands in it, read back from RESP. For tests that count the Redis cost of one flow.
import { Socket } from "node:net"

export interface Sent {
  /** Which connection (numbered in the order they first wrote). */
  readonly connection: number
  /** Each command as its name (upper case) and arguments. */
  readonly commands: ReadonlyArray<ReadonlyArray<string>>
}

/** Parses whole RESP arrays of bulk strings, as clients write commands; throws on anything else. */
const parse = (data: Buffer): Array<Array<string>> => {
  const commands: Array<Array<string>> = []
  let at = 0
  const line = () => {
    const end = data.indexOf("\r\n", at)
    if (end < 0) throw new Error("partial RESP line in one write")
    const text = data.toString("latin1", at, end)
    at = end + 2
    return text
  }
  while (at < data.length) {
    const head = line()
    if (!head.startsWith("*")) throw new Error(`not a RESP array: ${head}`)
    const args: Array<string> = []
    for (let n = Number(head.slice(1)); n > 0; n--) {
      const size = line()
      if (!size.startsWith("$")) throw new Error(`not a bulk string: ${size}`)
      const length = Number(size.slice(1))
      args.push(data.toString("utf8", at, at + length))
      at += length + 2
    }
    commands.push([args[0]!.toUpperCase(), ...args.slice(1)])
  }
  return commands
}

/**
 * Records writes to `port` (on 127.0.0.1) until `stop`. Patches `Socket.prototype.write` for
 * this process while recording: the gateway under test runs in it.
 */
export const recordRedisTraffic = (port: number) => {
  const sent: Array<Sent> = []
  const ids = new WeakMap<Socket, number>()
  let next = 0
  const original = Socket.prototype.write
  const own = Object.hasOwn(Socket.prototype, "write")
  Socket.prototype.write = function(this: Socket, chunk: unknown, ...rest: Array<unknown>) {
    if (this.remotePort === port && (typeof chunk === "string" || Buffer.isBuffer(chunk))) {
      if (!ids.has(this)) ids.set(this, next++)
      sent.push({ connection: ids.get(this)!, commands: parse(typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk) })
    }
    return (original as (...args: Array<unknown>) => boolean).call(this, chunk, ...rest)
  } as typeof Socket.prototype.write
  return {
    /** Everything sent since the last `take` (or the start), which it forgets. */
    take: (): Array<Sent> => sent.splice(0, sent.length),
    stop: () => {
      if (own) Socket.prototype.write = original
      else delete (Socket.prototype as { write?: unknown }).write
    }
  }
}
