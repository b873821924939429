// Two gateway nodes on a real 3-master Redis Cluster: sharded pub/sub carries each channel's
// events from its slot's shard, hash tags keep each channel's keys (and each subject's) in one
// slot, and the guarantees of the single-Redis setup hold for channels spread over every shard.
import calculateSlot from "cluster-key-slot"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { subjectFor } from "../../src/domain/Principal.ts"
import * as Channel from "../../src/domain/Channel.ts"
import type { PatientRef } from "../../src/domain/Ref.ts"
import { PUBLISH, PUBLISH_MANY } from "../../src/interpreters/redis/EventBus.ts"
import { testKeys } from "../support/data-key.ts"
import { type Gateway, makeTicketKey, startGateway } from "../support/gateway.ts"
import { hasRedisServer, skipReason } from "../support/redis.ts"
import { startCluster, type TestCluster } from "../support/redis-cluster.ts"
import { recordRedisTraffic } from "../support/redis-traffic.ts"

describe.skipIf(!hasRedisServer)(`two nodes on a Redis Cluster${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  let cluster: TestCluster
  let a: Gateway
  let b: Gateway

  beforeAll(async () => {
    cluster = await startCluster()
    const ticketKeyPem = makeTicketKey()
    a = await startGateway({ ...cluster.env, TIDINGS_NODE_ID: "node-a" }, { ticketKeyPem })
    b = await startGateway({ ...cluster.env, TIDINGS_NODE_ID: "node-b" }, { ticketKeyPem })
  }, 60_000)
  afterAll(async () => {
    await a?.close()
    await b?.close()
    await cluster?.stop()
  })

  const open = async (gateway: Gateway, ref: string) => {
    const connected = await gateway.connect({ ticket: await gateway.ticket("patient", ref) })
    if (connected.kind !== "open") throw new Error(JSON.stringify(connected))
    connected.client.send({ type: "subscribe", id: "s", channel: `patient:${ref}` })
    await connected.client.next((f) => f.type === "subscribed")
    return connected
  }

  it("spreads channels over all three shards, each channel's keys in one slot", async () => {
    const admin = new Redis({ ...cluster.nodes[0]!, ...cluster.loginAs("admin"), lazyConnect: true })
    await admin.connect()
    try {
      const owners = new Set<string>()
      for (let i = 0; i < 12; i++) {
        const channel = testKeys.channel(Channel.patient(`pt_slot_${String(i).padStart(6, "0")}` as PatientRef))
        const slots = await Promise.all(
          [channel.seq, channel.epoch, channel.history, channel.events, testKeys.idempotency(channel, "svc/evt_x")]
            .map((key) => admin.call("CLUSTER", "KEYSLOT", key))
        )
        expect(new Set(slots).size).toBe(1)
        const slot = Number(slots[0])
        owners.add(slot < 5461 ? "first" : slot < 10922 ? "second" : "third")
      }
      expect(owners.size).toBe(3)
    } finally {
      admin.disconnect()
    }
  })

  it("keeps a subject's ticket, sessions, revocation and connect bucket in one slot, where one script opens its session", async () => {
    const admin = new Redis({ ...cluster.nodes[0]!, ...cluster.loginAs("admin"), lazyConnect: true })
    await admin.connect()
    try {
      for (const subject of [subjectFor("patient", "pt_slot_subj_01"), subjectFor("clinician", "cl_slot_subj_01")]) {
        const named = testKeys.subject(subject)
        const keys = [named.ticket("jti_slot_00000001"), named.sessions, named.revoked, named.connects, testKeys.care(subject)]
        const slots = await Promise.all(keys.map((key) => admin.call("CLUSTER", "KEYSLOT", key)))
        expect(new Set(slots).size).toBe(1)
      }
    } finally {
      admin.disconnect()
    }
  })

  it("delivers across nodes for channels on every shard, in gap-free seq order", async () => {
    const refs = Array.from({ length: 12 }, (_, i) => `pt_slot_${String(i).padStart(6, "0")}`)
    const subscribers = await Promise.all(refs.map((ref, i) => open(i % 2 === 0 ? a : b, ref)))
    await Promise.all(refs.flatMap((ref, i) =>
      Array.from({ length: 10 }, (_, n) =>
        (n % 2 === 0 ? b : a).publish("svc_cluster_pub", { channel: `patient:${ref}`, kind: "task.assigned", ref: `tsk_${i}_${String(n).padStart(6, "0")}` })
          .then((reply) => expect(reply.status).toBe(202))
      )
    ))
    for (const { client } of subscribers) {
      await client.next((f) => f.type === "event" && f.seq === 10)
      expect(client.frames.filter((f) => f.type === "event").map((f) => f.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    }
    for (const { ws } of subscribers) ws.close()
  })

  it("takes a batch in one script call per slot, each channel's events in request order", async () => {
    const refs = Array.from({ length: 9 }, (_, i) => `pt_batch_slot_${String(i).padStart(4, "0")}`)
    const subscribers = await Promise.all(refs.map((ref) => open(b, ref)))
    const events = Array.from({ length: 27 }, (_, i) => ({
      channel: `patient:${refs[i % 9]}`,
      kind: "task.assigned",
      ref: `tsk_batch_${String(i).padStart(6, "0")}`
    }))
    const slots = new Set(refs.map((ref) => calculateSlot(testKeys.channel(Channel.patient(ref as PatientRef)).seq)))
    // Stopped in the reverse order: each recorder wraps the one before it.
    const recorders = cluster.nodes.map((node) => recordRedisTraffic(node.port))
    try {
      const reply = await a.publishBatch("svc_cluster_batch", events)
      expect(reply.status).toBe(200)
      expect(reply.json().results.map((r: { seq: number }) => r.seq)).toEqual(events.map((_, i) => Math.floor(i / 9) + 1))
      const scripts = recorders.flatMap((recorder) => recorder.take()).flatMap((write) => write.commands)
        .filter((command) => command[0] === "EVALSHA" && (command[1] === PUBLISH_MANY.sha || command[1] === PUBLISH.sha))
      expect(scripts.map((command) => command[1])).toEqual([...slots].map(() => PUBLISH_MANY.sha))
    } finally {
      for (const recorder of recorders.reverse()) recorder.stop()
    }
    for (const [i, { client }] of subscribers.entries()) {
      await client.next((f) => f.type === "event" && f.seq === 3)
      expect(client.frames.filter((f) => f.type === "event").map((f) => f.ref)).toEqual(events.filter((_, n) => n % 9 === i).map((e) => e.ref))
    }
    for (const { ws } of subscribers) ws.close()
  })

  it("keeps tickets single-use and revocation cluster-wide", async () => {
    const ticket = await a.ticket("patient", "pt_slot_rev_0001")
    const first = await b.connect({ ticket })
    if (first.kind !== "open") throw new Error(JSON.stringify(first))
    first.client.send({ type: "ping", id: "p" })
    await first.client.next((f) => f.type === "pong")
    const again = await a.connect({ ticket })
    if (again.kind !== "open") throw new Error(JSON.stringify(again))
    expect(await again.client.closed).toEqual({ code: 4401, reason: "unauthorized" })
    const admin = await a.token("admin", "ad_slot_rev_0001")
    const reply = await a.http("POST", "/v1/admin/revocations", {
      body: JSON.stringify({ subject: "pt_slot_rev_0001" }),
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" }
    })
    expect(reply.status).toBe(202)
    expect(await first.client.closed).toEqual({ code: 4409, reason: "session revoked" })
  })

  it("reports ready while the cluster answers", async () => {
    expect((await a.http("GET", "/readyz")).status).toBe(200)
    expect((await b.http("GET", "/readyz")).status).toBe(200)
  })
})
