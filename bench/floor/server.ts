// The floor: the least a server must do to carry Tidings' traffic, to measure Tidings against.
// Same TLS policy (src/server/Tls.ts: TLS 1.2/1.3, AEAD, X25519MLKEM768 first), bare `ws`, one
// Redis subscriber connection per node fanning each event out to a local Set of sockets
// (encoded once per event), heartbeats like Tidings'. No auth, no tickets, no audit, no
// rate limits, no Effect. Publishing (POST /v1/events) runs the same Lua script as Tidings.
//
// Protocol (a subset of Tidings'): client sends {"type":"subscribe","id","channel"} and gets
// {"type":"subscribed","id","channel","seq"}; events arrive as Tidings' event frames.
import { readFileSync } from "node:fs"
import { createServer } from "node:https"
import type { IncomingMessage, ServerResponse } from "node:http"
import { WebSocket, WebSocketServer } from "ws"
import { Redis } from "ioredis"
import { resumptionKeys, serverOptions } from "../../src/server/Tls.ts"
import { connectBus, keys } from "../lib/bus.ts"

const env = (name: string): string => {
  const value = process.env[name]
  if (value === undefined || value === "") throw new Error(`floor: ${name} is required`)
  return value
}

const [host, portText] = env("FLOOR_LISTEN").split(":") as [string, string]
const redisUrl = env("FLOOR_REDIS_URL")
const heartbeatMs = Number(process.env.FLOOR_HEARTBEAT_S ?? "25") * 1000
const PONG_TIMEOUT_MS = 10_000
const SUBPROTOCOL = "tidings.v1"
const AS_TEXT = { binary: false } as const

const bus = await connectBus(redisUrl)
const commands = bus.redis
const subscriber = new Redis(redisUrl, { lazyConnect: true })
subscriber.on("error", () => undefined)
await subscriber.connect()

interface Client {
  readonly ws: WebSocket
  readonly channels: Set<string>
  pingedAt: number | undefined
}

/** Redis pub/sub name → the local sockets on that channel. */
const local = new Map<string, Set<Client>>()
const clients = new Set<Client>()

subscriber.on("smessage", (name: string, message: string) => {
  const set = local.get(name)
  if (set === undefined || set.size === 0) return
  // "<seq>|<epoch>|<ms>|<event json>": the floor's values are not sealed.
  const bar = message.indexOf("|")
  const third = message.indexOf("|", message.indexOf("|", bar + 1) + 1)
  const body = JSON.parse(message.slice(third + 1)) as { id: string; kind: string; ref: string; at: string }
  const channel = name.slice(5, name.length - 8) // tdg:{<channel>}:events
  const frame = Buffer.from(JSON.stringify({
    type: "event", channel, seq: Number(message.slice(0, bar)), id: body.id, kind: body.kind, ref: body.ref, at: body.at
  }))
  for (const client of set) if (client.ws.readyState === WebSocket.OPEN) client.ws.send(frame, AS_TEXT)
})

const subscribe = async (client: Client, id: string, channel: string) => {
  const name = keys.events(channel)
  let set = local.get(name)
  if (set === undefined) {
    set = new Set()
    local.set(name, set)
    await subscriber.ssubscribe(name)
  }
  set.add(client)
  client.channels.add(name)
  const seq = Number((await commands.get(keys.seq(channel))) ?? 0)
  if (client.ws.readyState === WebSocket.OPEN) client.ws.send(JSON.stringify({ type: "subscribed", id, channel, seq }))
}

const leave = (client: Client, name: string) => {
  const set = local.get(name)
  if (set === undefined) return
  set.delete(client)
  if (set.size === 0) {
    local.delete(name)
    subscriber.sunsubscribe(name).catch(() => undefined)
  }
}

const server = createServer({
  ...serverOptions({
    cert: readFileSync(env("FLOOR_TLS_CERT_FILE"), "utf8"),
    key: readFileSync(env("FLOOR_TLS_KEY_FILE"), "utf8")
  }),
  // The same session ticket keys as Tidings' (TIDINGS_TLS_RESUMPTION_KEY_FILE), every start.
  ticketKeys: resumptionKeys(readFileSync(env("FLOOR_TLS_RESUMPTION_KEY_FILE")))
})

const answer = (res: ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
  res.end(text)
}

server.on("request", (req: IncomingMessage, res: ServerResponse) => {
  if (req.method === "GET" && req.url === "/healthz") return answer(res, 200, { ok: true })
  if (req.method !== "POST" || req.url !== "/v1/events") return answer(res, 404, { error: "not_found" })
  let text = ""
  req.setEncoding("utf8")
  req.on("data", (chunk: string) => (text += chunk))
  req.on("end", () => {
    let body: { channel: string; kind: string; ref: string; id: string }
    try {
      body = JSON.parse(text)
    } catch {
      return answer(res, 400, { error: "bad_request" })
    }
    bus.publish(body.channel, body.id, body.kind, body.ref, "floor", false).then(
      (seq) => answer(res, 202, { id: body.id, channel: body.channel, seq }),
      () => answer(res, 503, { error: "unavailable" })
    )
  })
})

const wss = new WebSocketServer({
  noServer: true,
  maxPayload: 4096,
  perMessageDeflate: false,
  clientTracking: false,
  handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false)
})

server.on("upgrade", (req, socket, head) => {
  socket.on("error", () => socket.destroy())
  if ((req.url ?? "").split("?", 1)[0] !== "/v1/ws") return socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
  wss.handleUpgrade(req, socket, head, (ws) => {
    const client: Client = { ws, channels: new Set(), pingedAt: undefined }
    clients.add(client)
    ws.on("pong", () => (client.pingedAt = undefined))
    ws.on("message", (data, isBinary) => {
      if (isBinary) return
      let message: { type?: string; id?: string; channel?: string }
      try {
        message = JSON.parse(data.toString())
      } catch {
        return ws.close(4400, "bad request")
      }
      if (message.type === "subscribe" && typeof message.channel === "string") {
        subscribe(client, message.id ?? "", message.channel).catch(() =>
          ws.send(JSON.stringify({ type: "error", id: message.id, code: "unavailable" })))
      } else if (message.type === "unsubscribe" && typeof message.channel === "string") {
        leave(client, keys.events(message.channel))
        ws.send(JSON.stringify({ type: "unsubscribed", id: message.id, channel: message.channel }))
      } else if (message.type === "ping") {
        ws.send(JSON.stringify({ type: "pong", id: message.id }))
      }
    })
    ws.on("error", () => undefined)
    ws.once("close", () => {
      clients.delete(client)
      for (const name of client.channels) leave(client, name)
    })
  })
})

// Like Tidings: one timer pings every socket not already waiting; 10 s later the silent are cut.
const heartbeat = setInterval(() => {
  const now = Date.now()
  for (const client of clients) {
    if (client.pingedAt !== undefined) continue
    client.pingedAt = now
    client.ws.ping()
  }
  setTimeout(() => {
    const deadline = Date.now() - PONG_TIMEOUT_MS
    for (const client of clients) if (client.pingedAt !== undefined && client.pingedAt <= deadline) client.ws.terminate()
  }, PONG_TIMEOUT_MS).unref()
}, heartbeatMs)

server.listen(Number(portText), host, () => {
  process.stdout.write(`${JSON.stringify({ message: "listening", host, port: Number(portText) })}\n`)
})

const shutdown = () => {
  clearInterval(heartbeat)
  for (const client of clients) client.ws.close(1001, "going away")
  server.close()
  void Promise.allSettled([bus.close(), subscriber.quit()]).then(() => process.exit(0))
  setTimeout(() => process.exit(0), 2_000).unref()
}
process.on("SIGTERM", shutdown)
process.on("SIGINT", shutdown)
