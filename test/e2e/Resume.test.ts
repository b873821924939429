// Protocol v1.1 over wss:// against a real redis-server: a session opens with `welcome`; a
// channel's position is (epoch, seq), so a resume from another life of the channel is refused;
// and a live subscription is never left with a silent gap: a Redis that loses its state, or a
// pub/sub drop longer than the history, gives `reset`; a short drop replays what was missed.
import { Redis } from "ioredis"
import { request } from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Client } from "../support/gateway.ts"
import { type Gateway, startGateway } from "../support/gateway.ts"
import { freePort } from "../support/net.ts"
import { canControlRedis, controlSkipReason, hasRedisServer, skipReason, startRedis, type TestRedis, USERS } from "../support/redis.ts"

const EPOCH = /^[A-Za-z0-9]{8,16}$/

describe.skipIf(!canControlRedis)(`resume you can trust (v1.1)${
  canControlRedis ? "" : ` (skipped: ${hasRedisServer ? controlSkipReason : skipReason})`
}`, () => {
  let redis: TestRedis
  let gateway: Gateway
  let admin: Redis
  let metricsPort: number

  beforeAll(async () => {
    redis = await startRedis()
    metricsPort = await freePort()
    gateway = await startGateway({ TIDINGS_REDIS_URL: redis.url, TIDINGS_METRICS_LISTEN: `127.0.0.1:${metricsPort}` })
    admin = new Redis(redis.adminUrl, { lazyConnect: true })
    await admin.connect()
  })
  afterAll(async () => {
    admin?.disconnect()
    await gateway?.close()
    await redis?.stop()
  })

  /** A patient's open session, subscribed to their own channel; answers the `subscribed` frame. */
  const subscribed = async (ref: string, extra: Record<string, unknown> = {}) => {
    const connected = await gateway.connect({ ticket: await gateway.ticket("patient", ref) })
    if (connected.kind !== "open") throw new Error(JSON.stringify(connected))
    const { client } = connected
    client.send({ type: "subscribe", id: "s", channel: `patient:${ref}`, ...extra })
    return { client, ws: connected.ws, subscribed: await client.next((f) => f.type === "subscribed") }
  }

  const publish = async (ref: string, n: number, service = "svc_resume_001") => {
    const reply = await gateway.publish(service, { channel: `patient:${ref}`, kind: "message.received", ref: `msg_${ref}_${n}` })
    expect(reply.status).toBe(202)
    return reply.json() as { seq: number }
  }

  /** The frames of one channel that a v1.1 client applies, as compact strings: "event E:seq", "reset E:seq". */
  const applied = (client: Client) =>
    client.frames
      .filter((f) => f.type === "event" || f.type === "reset")
      .map((f) => `${f.type} ${f.epoch}:${f.seq}`)

  it("sends `welcome` first, once the session is open, with its deadline and idle timeout", async () => {
    const before = Date.now()
    const connected = await gateway.connect({ ticket: await gateway.ticket("patient", "pt_resume_welcome") })
    if (connected.kind !== "open") throw new Error(JSON.stringify(connected))
    const welcome = await connected.client.next((f) => f.type === "welcome")
    const after = Date.now()
    expect(connected.client.frames[0]).toBe(welcome)
    expect(welcome).toEqual({ type: "welcome", session: expect.stringMatching(/^c-[A-Za-z0-9_-]{16}$/), expiresAt: expect.any(String), idleTimeoutS: 900 })
    // The dev issuer's tokens last an hour, well inside TIDINGS_SESSION_MAX_S (12 h): the token's exp.
    const expiresAt = Date.parse(welcome.expiresAt)
    expect(expiresAt).toBeGreaterThanOrEqual(before + 3_600_000 - 1_000)
    expect(expiresAt).toBeLessThanOrEqual(after + 3_600_000)
    connected.client.send({ type: "ping", id: "p" })
    await connected.client.next((f) => f.type === "pong")
    expect(connected.client.frames.map((f) => f.type)).toEqual(["welcome", "pong"])
    connected.ws.close()
  })

  it("resumes with (epoch, since) in the channel's current epoch, and refuses a stale epoch with recovered: false", async () => {
    const ref = "pt_resume_epoch1"
    for (let i = 1; i <= 3; i++) await publish(ref, i)
    const first = await subscribed(ref)
    expect(first.subscribed).toMatchObject({ epoch: expect.stringMatching(EPOCH), seq: 3, recovered: false })
    const epoch = first.subscribed.epoch
    first.ws.close()

    const current = await subscribed(ref, { since: 1, epoch })
    expect(current.subscribed).toMatchObject({ epoch, seq: 3, recovered: true })
    await current.client.next((f) => f.type === "event" && f.seq === 3)
    expect(applied(current.client)).toEqual([`event ${epoch}:2`, `event ${epoch}:3`])
    current.ws.close()

    const stale = await subscribed(ref, { since: 1, epoch: "k3Jd92LqStale" })
    expect(stale.subscribed).toMatchObject({ epoch, seq: 3, recovered: false })
    stale.client.send({ type: "ping", id: "p" })
    await stale.client.next((f) => f.type === "pong")
    expect(applied(stale.client)).toEqual([])
    stale.ws.close()
  })

  it("after FLUSHALL, a live subscription gets `reset` to the new epoch, then seq 1 of it, and nothing is dropped", async () => {
    const ref = "pt_resume_flush1"
    const { client, ws, subscribed: answer } = await subscribed(ref)
    const old = answer.epoch
    await publish(ref, 1)
    await publish(ref, 2)
    await client.next((f) => f.type === "event" && f.seq === 2)

    await admin.flushall()
    // Redis restarted empty: the same channel starts a new life at seq 1.
    expect((await publish(ref, 3)).seq).toBe(1)
    expect((await publish(ref, 4)).seq).toBe(2)
    const reset = await client.next((f) => f.type === "reset")
    expect(reset).toEqual({ type: "reset", channel: `patient:${ref}`, epoch: expect.stringMatching(EPOCH), seq: 0 })
    expect(reset.epoch).not.toBe(old)
    await client.next((f) => f.type === "event" && f.epoch === reset.epoch && f.seq === 2)
    expect(applied(client)).toEqual([
      `event ${old}:1`, `event ${old}:2`, `reset ${reset.epoch}:0`, `event ${reset.epoch}:1`, `event ${reset.epoch}:2`
    ])
    ws.close()
  }, 20_000)

  /** Cuts the node's pub/sub connection and keeps it deaf (its re-SSUBSCRIBE refused) until `heal`. */
  const deafen = async () => {
    await admin.call("ACL", "SETUSER", USERS.gateway.name, "-ssubscribe")
    await admin.call("CLIENT", "KILL", "TYPE", "pubsub")
  }
  const heal = () => admin.call("ACL", "SETUSER", USERS.gateway.name, "+ssubscribe")

  it("a pub/sub drop longer than the history (100) gives `reset`, never a silent gap", async () => {
    const ref = "pt_resume_gap001"
    const { client, ws, subscribed: answer } = await subscribed(ref)
    const epoch = answer.epoch
    await publish(ref, 1)
    await client.next((f) => f.type === "event" && f.seq === 1)
    try {
      await deafen()
      for (let i = 2; i <= 151; i++) await publish(ref, i)
    } finally {
      await heal()
    }
    const reset = await client.next((f) => f.type === "reset", 10_000)
    expect(reset).toEqual({ type: "reset", channel: `patient:${ref}`, epoch, seq: 151 })
    await publish(ref, 152)
    await client.next((f) => f.type === "event" && f.seq === 152)
    // Whatever reached the client before the reset is in order and gap-free; after it, live from seq + 1.
    const seen = applied(client)
    const at = seen.indexOf(`reset ${epoch}:151`)
    expect(seen.slice(0, at)).toEqual(Array.from({ length: at }, (_, i) => `event ${epoch}:${i + 1}`))
    expect(seen.slice(at + 1)).toEqual([`event ${epoch}:152`])
    ws.close()
  }, 30_000)

  it("a pub/sub drop the history covers replays every missed event in order, and no `reset`", async () => {
    const ref = "pt_resume_gap002"
    const { client, ws, subscribed: answer } = await subscribed(ref)
    const epoch = answer.epoch
    try {
      await deafen()
      for (let i = 1; i <= 50; i++) await publish(ref, i)
    } finally {
      await heal()
    }
    await client.next((f) => f.type === "event" && f.seq === 50, 10_000)
    await publish(ref, 51)
    await client.next((f) => f.type === "event" && f.seq === 51)
    expect(applied(client)).toEqual(Array.from({ length: 51 }, (_, i) => `event ${epoch}:${i + 1}`))
    ws.close()
  }, 30_000)

  /** The node's metrics exposition (the registry is the test process's: read relative values only). */
  const metrics = () =>
    new Promise<string>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: metricsPort, path: "/metrics", method: "GET" }, (res) => {
        let body = ""
        res.setEncoding("utf8")
        res.on("data", (chunk: string) => (body += chunk))
        res.on("end", () => resolve(body))
      })
      req.on("error", reject)
      req.end()
    })

  it("counts resets by cause, every cause exported", async () => {
    const text = await metrics()
    for (const cause of ["epoch", "rollback", "history", "catchup_failed"]) {
      expect(text).toMatch(new RegExp(`tidings_resets_total\\{cause="${cause}"\\} \\d+`))
    }
    // The two resets above: one epoch change, one gap past the history.
    expect(text).toMatch(/tidings_resets_total\{cause="epoch"\} [1-9]/)
    expect(text).toMatch(/tidings_resets_total\{cause="history"\} [1-9]/)
  })
})
