// Specifies publishing (contract §2 `POST /v1/events`, §4): only services with `events:publish`,
// only allowlisted kinds, a per-channel seq from 1, idempotent on id, gateway-made ids and times.
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { TestClock } from "effect/testing"
import * as Channel from "../../src/domain/Channel.ts"
import type { Event, PublishRequest } from "../../src/domain/Event.ts"
import type { Principal } from "../../src/domain/Principal.ts"
import type { ClinicianRef, EventId, EventRef, PatientRef, SubjectRef } from "../../src/domain/Ref.ts"
import { MemoryAuditRecords } from "../../src/interpreters/memory/AuditLog.ts"
import * as Publish from "../../src/programs/Publish.ts"
import { EventBus } from "../../src/services/EventBus.ts"
import { memoryLayer } from "../support/layers.ts"

const ALICE = "pt_alice_0001" as PatientRef
const BOB = "pt_bob_00002" as PatientRef
const CAROL = "cl_carol_001" as ClinicianRef

const service: Principal = { _tag: "Service", clientId: "svc_backend_01", scopes: ["events:publish", "relationships:write"] }

const request = (channel: Channel.Channel, extra: Partial<PublishRequest> = {}): PublishRequest => ({
  channel,
  kind: "appointment.updated",
  ref: "apt_00000001" as EventRef,
  ...extra
})

/** Everything the bus delivers on the channel while the test's scope is open. */
const listen = (channel: Channel.Channel) =>
  Effect.gen(function*() {
    const seen: Array<Event> = []
    // A reset would show as a value no event equals.
    yield* (yield* EventBus).subscribe(channel, { event: (event) => void seen.push(event), reset: () => void seen.push("reset" as never) })
    return seen
  })

describe("publish", () => {
  it.effect("assigns consecutive seq per channel, from 1, independently per channel", () =>
    Effect.gen(function*() {
      const alice = Channel.patient(ALICE)
      const bob = Channel.patient(BOB)
      const carol = Channel.clinician(CAROL)
      const seqs: Array<readonly [string, number]> = []
      for (const channel of [alice, alice, bob, alice, carol, bob]) {
        const accepted = yield* Publish.publish(service, request(channel))
        expect(accepted.channel).toEqual(channel)
        seqs.push([Channel.print(channel), accepted.seq])
      }
      expect(seqs).toEqual([
        ["patient:pt_alice_0001", 1],
        ["patient:pt_alice_0001", 2],
        ["patient:pt_bob_00002", 1],
        ["patient:pt_alice_0001", 3],
        ["clinician:cl_carol_001", 1],
        ["patient:pt_bob_00002", 2]
      ])
      expect((yield* (yield* EventBus).head(alice)).seq).toBe(3)
    }).pipe(Effect.provide(memoryLayer())))

  it.effect("delivers events to bus subscribers in seq order, carrying only the contract fields", () =>
    Effect.gen(function*() {
      const alice = Channel.patient(ALICE)
      const seen = yield* listen(alice)
      const other = yield* listen(Channel.patient(BOB))
      yield* Publish.publish(service, request(alice, { kind: "message.received", ref: "msg_00000001" as EventRef }))
      yield* Publish.publish(service, request(alice, { kind: "result.available", ref: "res_00000001" as EventRef }))
      expect(seen.map((e) => [e.seq, e.kind, e.ref])).toEqual([
        [1, "message.received", "msg_00000001"],
        [2, "result.available", "res_00000001"]
      ])
      expect(Object.keys(seen[0]!).sort()).toEqual(["at", "channel", "epoch", "id", "kind", "ref", "seq"])
      expect(other).toHaveLength(0)
    }).pipe(Effect.provide(memoryLayer())))

  it.effect("publishes the same event id once: same seq returned, one event seen", () =>
    Effect.gen(function*() {
      const alice = Channel.patient(ALICE)
      const seen = yield* listen(alice)
      const id = "evt_fixed_00000001" as EventId
      const first = yield* Publish.publish(service, request(alice, { id }))
      const second = yield* Publish.publish(service, request(alice, { id }))
      expect(first).toEqual({ id, channel: alice, seq: 1 })
      expect(second).toEqual(first)
      expect(seen).toHaveLength(1)
      expect(seen[0]!.id).toBe(id)
      const next = yield* Publish.publish(service, request(alice))
      expect(next.seq).toBe(2)
      const published = (yield* (yield* MemoryAuditRecords).all).filter((r) => r.event === "event.published")
      expect(published).toHaveLength(2)
    }).pipe(Effect.provide(memoryLayer())))

  it.effect("remembers an event id for 24 hours", () =>
    Effect.gen(function*() {
      const alice = Channel.patient(ALICE)
      const id = "evt_fixed_00000002" as EventId
      yield* Publish.publish(service, request(alice, { id }))
      yield* TestClock.adjust(Duration.hours(23))
      expect((yield* Publish.publish(service, request(alice, { id }))).seq).toBe(1)
      yield* TestClock.adjust(Duration.hours(1))
      expect((yield* Publish.publish(service, request(alice, { id }))).seq).toBe(2)
    }).pipe(Effect.provide(memoryLayer())))

  it.effect("refuses a kind outside the allowlist with MalformedInput", () =>
    Effect.gen(function*() {
      const alice = Channel.patient(ALICE)
      const seen = yield* listen(alice)
      for (const kind of ["appointment.deleted", "diagnosis.updated", "Appointment.updated", ""]) {
        const error = yield* Effect.flip(Publish.publish(service, request(alice, { kind })))
        expect(error._tag).toBe("MalformedInput")
      }
      expect(seen).toHaveLength(0)
      expect((yield* (yield* EventBus).head(alice)).seq).toBe(0)
    }).pipe(Effect.provide(memoryLayer())))

  it.effect("follows the configured allowlist", () =>
    Effect.gen(function*() {
      const alice = Channel.patient(ALICE)
      expect((yield* Publish.publish(service, request(alice, { kind: "lab.ready" }))).seq).toBe(1)
      const error = yield* Effect.flip(Publish.publish(service, request(alice, { kind: "appointment.updated" })))
      expect(error._tag).toBe("MalformedInput")
    }).pipe(Effect.provide(memoryLayer({ eventKinds: new Set(["lab.ready"]) }))))

  it.effect("refuses a service without events:publish, a patient, a clinician and an admin (Forbidden)", () =>
    Effect.gen(function*() {
      const alice = Channel.patient(ALICE)
      const seen = yield* listen(alice)
      const refused: ReadonlyArray<Principal> = [
        { _tag: "Service", clientId: "svc_backend_01", scopes: ["relationships:write"] },
        { _tag: "Service", clientId: "svc_backend_01", scopes: [] },
        { _tag: "Patient", ref: ALICE },
        { _tag: "Clinician", ref: CAROL },
        { _tag: "Admin", ref: "ad_root_0001" as SubjectRef, scopes: ["sessions:revoke", "events:publish"] }
      ]
      for (const principal of refused) {
        const error = yield* Effect.flip(Publish.publish(principal, request(alice)))
        expect(error._tag).toBe("Forbidden")
      }
      expect(seen).toHaveLength(0)
      expect((yield* (yield* MemoryAuditRecords).all).filter((r) => r.event === "event.published")).toHaveLength(0)
    }).pipe(Effect.provide(memoryLayer())))

  it.effect("makes an evt_ id matching the ref pattern when the service gives none, unique per event", () =>
    Effect.gen(function*() {
      const alice = Channel.patient(ALICE)
      const ids = new Set<string>()
      for (let i = 0; i < 50; i++) {
        const accepted = yield* Publish.publish(service, request(alice))
        expect(accepted.id).toMatch(/^evt_[A-Za-z0-9_-]+$/)
        expect(accepted.id).toMatch(/^[A-Za-z0-9_-]{8,64}$/)
        ids.add(accepted.id)
      }
      expect(ids.size).toBe(50)
    }).pipe(Effect.provide(memoryLayer())))

  it.effect("stamps `at` from the Clock", () =>
    Effect.gen(function*() {
      const alice = Channel.patient(ALICE)
      const seen = yield* listen(alice)
      yield* Publish.publish(service, request(alice))
      yield* TestClock.adjust(Duration.seconds(90))
      yield* Publish.publish(service, request(alice))
      expect(seen.map((e) => e.at)).toEqual(["1970-01-01T00:00:00.000Z", "1970-01-01T00:01:30.000Z"])
    }).pipe(Effect.provide(memoryLayer())))

  it.effect("audits the publish with the channel's ref pseudonymized", () =>
    Effect.gen(function*() {
      yield* Publish.publish(service, request(Channel.patient(ALICE), { ref: "apt_secret_0001" as EventRef }))
      const records = (yield* (yield* MemoryAuditRecords).all)
      const record = records.find((r) => r.event === "event.published")
      expect(record).toMatchObject({ result: "ok", cause: "appointment.updated" })
      expect(record!.channel).toMatch(/^patient:[0-9a-f]{32}$/)
      const json = JSON.stringify(records)
      expect(json).not.toContain(ALICE)
      expect(json).not.toContain("apt_secret_0001")
    }).pipe(Effect.provide(memoryLayer())))
})

describe("publish idempotency across services", () => {
  it.effect("keeps each service's ids to itself: another service reusing an id publishes its own event", () =>
    Effect.gen(function*() {
      const other: Principal = { _tag: "Service", clientId: "svc_other_0001", scopes: ["events:publish"] }
      const id = "evt_shared_00001" as EventId
      const bob = Channel.parse("patient:pt_bob_00002")!
      const first = yield* Publish.publish(service, request(Channel.parse("patient:pt_alice_0001")!, { id }))
      const second = yield* Publish.publish(other, request(bob, { id }))
      expect(second.channel).toEqual(bob)
      expect(second.seq).toBe(1)
      expect(first.channel).not.toEqual(second.channel)
      // The first service repeating itself still gets its own first answer.
      expect(yield* Publish.publish(service, request(Channel.parse("patient:pt_alice_0001")!, { id }))).toEqual(first)
    }).pipe(Effect.provide(memoryLayer())))
})
