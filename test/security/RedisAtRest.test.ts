// The at-rest canary: the whole flow (tickets, sessions, subscriptions, publishes and their
// repeats, care grants and ends, revocations) with PHI-like refs and ids, against a real
// redis-server with an append-only file, while a MONITOR connection records every command.
// Then every key and value (by type), every AOF byte and every MONITOR line is searched: no
// raw ref, no canary string, no event kind may appear; Redis sees pseudonyms and sealed values.
import { Redis as IORedis } from "ioredis"
import type { ChildProcess } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DEFAULT_EVENT_KINDS } from "../../src/domain/Event.ts"
import { subjectFor } from "../../src/domain/Principal.ts"
import { testKeys } from "../support/data-key.ts"
import { type Gateway, startGateway } from "../support/gateway.ts"
import { freePort } from "../support/net.ts"
import { roundTrip } from "../support/nodes.ts"
import { exited, hasRedisServer, skipReason, spawnRedis, urlAs, usersArgs } from "../support/redis.ts"

// Refs shaped like identifiers a hospital would use, all valid opaque refs.
const PATIENT = "MRN00012345678"
const OTHER_PATIENT = "MRN00087654321"
const CLINICIAN = "JohnQPatientMD"
const SERVICE = "svc_JaneRoeLab"
const EVENT_REF = "DOB_1961-04-23"
const EVENT_ID = "evt_JaneRoe19610423"
/** Searched for case-insensitively in everything Redis saw or kept. */
const NEEDLES = [PATIENT, OTHER_PATIENT, CLINICIAN, SERVICE, EVENT_REF, "1961-04-23", EVENT_ID, "JaneRoe", ...DEFAULT_EVENT_KINDS]
  .map((needle) => needle.toLowerCase())

const leaks = (text: string) => {
  const lower = text.toLowerCase()
  return NEEDLES.filter((needle) => lower.includes(needle))
}

describe.skipIf(!hasRedisServer)(`Redis at rest and in its MONITOR${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  const seen = { keys: [] as Array<string>, values: [] as Array<string>, aof: "", aofBytes: 0, monitor: [] as Array<string> }
  let redis: ChildProcess
  let dir: string
  let gateway: Gateway

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tidings-at-rest-"))
    const port = await freePort()
    redis = await spawnRedis([
      "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", dir,
      ...usersArgs()
    ])
    // The gateway as its least-privileged user; the test reads everything as the admin.
    const url = urlAs("gateway", port)
    const admin = new IORedis(urlAs("admin", port))
    const monitor = await new IORedis(urlAs("admin", port)).monitor()
    monitor.on("monitor", (_time: string, args: Array<string>) => void seen.monitor.push(args.join(" ")))

    gateway = await startGateway({ TIDINGS_REDIS_URL: url })
    const service = await gateway.token("service", SERVICE)
    const admins = await gateway.token("admin", "adm_00000001")
    const send = (method: string, path: string, body: unknown, token: string) => {
      const text = JSON.stringify(body)
      return gateway.http(method, path, {
        body: text,
        headers: { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)), authorization: `Bearer ${token}` }
      })
    }
    const expectStatus = async (reply: Promise<{ status: number }>, status: number) => expect((await reply).status).toBe(status)

    // A patient on their own channel, a clinician on the patient's channel through a care grant.
    const patient = await gateway.connect({ ticket: await gateway.ticket("patient", PATIENT) })
    const clinician = await gateway.connect({ ticket: await gateway.ticket("clinician", CLINICIAN) })
    if (patient.kind !== "open" || clinician.kind !== "open") throw new Error("a session was refused")
    await expectStatus(send("PUT", "/v1/care-relationships", { clinician: CLINICIAN, patient: PATIENT }, service), 204)
    await expectStatus(send("PUT", "/v1/care-relationships", { clinician: CLINICIAN, patient: OTHER_PATIENT, until: new Date(Date.now() + 3_600_000).toISOString() }, service), 204)
    patient.client.send({ type: "subscribe", id: "s1", channel: `patient:${PATIENT}` })
    clinician.client.send({ type: "subscribe", id: "s2", channel: `patient:${PATIENT}` })
    await patient.client.next((f) => f.type === "subscribed")
    await clinician.client.next((f) => f.type === "subscribed")

    // Every kind, with PHI-like refs and a service-chosen id; the id once more (a repeat).
    for (const [i, kind] of DEFAULT_EVENT_KINDS.entries()) {
      await expectStatus(gateway.publish(SERVICE, { channel: `patient:${PATIENT}`, kind, ref: EVENT_REF, id: `${EVENT_ID}${i}` }), 202)
    }
    await expectStatus(gateway.publish(SERVICE, { channel: `patient:${PATIENT}`, kind: "result.available", ref: EVENT_REF, id: `${EVENT_ID}0` }), 202)
    await expectStatus(gateway.publish(SERVICE, { channel: `clinician:${CLINICIAN}`, kind: "task.assigned", ref: EVENT_REF }), 202)
    await expectStatus(gateway.publish(SERVICE, { channel: `patient:${OTHER_PATIENT}`, kind: "message.received", ref: EVENT_REF }), 202)
    await patient.client.next((f) => f.type === "event" && f.seq === DEFAULT_EVENT_KINDS.length)
    await clinician.client.next((f) => f.type === "event" && f.seq === DEFAULT_EVENT_KINDS.length)

    // A resume from history, a care end (the clinician's subscription goes), a revocation.
    const again = await gateway.connect({ ticket: await gateway.ticket("patient", PATIENT) })
    if (again.kind !== "open") throw new Error("the second session was refused")
    again.client.send({ type: "subscribe", id: "s3", channel: `patient:${PATIENT}`, since: 2 })
    await again.client.next((f) => f.type === "subscribed" && f.id === "s3")
    await expectStatus(send("DELETE", "/v1/care-relationships", { clinician: CLINICIAN, patient: PATIENT }, service), 204)
    await clinician.client.next((f) => f.type === "error" && f.code === "forbidden")
    await roundTrip(clinician.client, "after-end")
    await expectStatus(send("POST", "/v1/admin/revocations", { subject: PATIENT, role: "patient" }, admins), 202)
    await patient.client.closed
    await again.client.closed

    // Everything Redis keeps, by type.
    let cursor = "0"
    do {
      const [next, keys] = await admin.scan(cursor, "COUNT", "1000")
      cursor = next
      for (const key of keys) {
        seen.keys.push(key)
        const type = await admin.type(key)
        if (type === "string") seen.values.push((await admin.get(key)) ?? "")
        else if (type === "list") seen.values.push(...(await admin.lrange(key, 0, -1)))
        else if (type === "hash") seen.values.push(...Object.entries(await admin.hgetall(key)).flat())
        else if (type === "zset") seen.values.push(...(await admin.zrange(key, "0", "-1", "WITHSCORES")))
        else if (type === "set") seen.values.push(...(await admin.smembers(key)))
        else if (type === "stream") seen.values.push(...(await admin.xrange(key, "-", "+")).flatMap(([id, fields]) => [id, ...fields]))
        else throw new Error(`a key of an unexpected type: ${type}`)
      }
    } while (cursor !== "0")
    // Every byte of the append-only file (Redis 7: a directory of base and incremental files).
    const aofDir = join(dir, "appendonlydir")
    for (const file of readdirSync(aofDir)) {
      const bytes = readFileSync(join(aofDir, file))
      seen.aofBytes += bytes.length
      seen.aof += bytes.toString("latin1")
    }
    admin.disconnect()
    monitor.disconnect()
    // For the record: how much was searched.
    console.log(`at rest: ${seen.keys.length} keys, ${seen.values.length} values, ${seen.aofBytes} AOF bytes, ${seen.monitor.length} MONITOR lines`)
  }, 60_000)

  afterAll(async () => {
    await gateway?.close()
    if (redis !== undefined) await exited(redis, "SIGTERM")
    rmSync(dir, { recursive: true, force: true })
  })

  it("searched the flow's keys, values, append-only file and commands (not an empty Redis)", () => {
    const channel = testKeys.channel({ _tag: "patient", ref: PATIENT } as never)
    expect(seen.keys).toEqual(expect.arrayContaining([channel.seq, channel.history, channel.epoch]))
    expect(seen.values.length).toBeGreaterThan(DEFAULT_EVENT_KINDS.length)
    expect(seen.aof).toContain(channel.history)
    expect(seen.monitor.some((line) => line.toLowerCase().startsWith("evalsha") && line.includes(channel.events))).toBe(true)
    expect(seen.monitor.some((line) => line.includes(testKeys.subject(subjectFor("patient", PATIENT)).revoked))).toBe(true)
  })

  it("no key name holds a raw ref, a canary or an event kind", () => {
    expect(seen.keys.flatMap(leaks)).toEqual([])
  })

  it("no stored value holds one", () => {
    expect(seen.values.flatMap(leaks)).toEqual([])
  })

  it("no byte of the append-only file holds one", () => {
    expect(leaks(seen.aof)).toEqual([])
  })

  it("no command Redis was sent (MONITOR) holds one: script arguments, pub/sub messages and control messages included", () => {
    expect(seen.monitor.flatMap(leaks)).toEqual([])
  })
})
