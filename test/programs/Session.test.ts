// Specifies one WebSocket session (contract §3, §5, §6) end to end on the memory services, driven
// through a fake transport: subscriptions, live delivery, recovery, authorization, limits and every end.
import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Layer, Metric } from "effect"
import { TestClock } from "effect/testing"
import * as Channel from "../../src/domain/Channel.ts"
import { ClosedNormally, type GatewayError, TooSlow } from "../../src/domain/Errors.ts"
import { deliveriesFailed } from "../../src/programs/Metrics.ts"
import type { ClinicianRef, EventId, EventRef, PatientRef, SubjectRef } from "../../src/domain/Ref.ts"
import type { Principal } from "../../src/domain/Principal.ts"
import { DENIALS_BEFORE_CLOSE, LIMITED_BEFORE_CLOSE, MALFORMED_BEFORE_CLOSE, SUBSCRIPTIONS_PER_CONNECTION } from "../../src/domain/Limits.ts"
import { defaults } from "../../src/services/Settings.ts"
import { MemoryAuditRecords } from "../../src/interpreters/memory/AuditLog.ts"
import { Hub } from "../../src/services/Hub.ts"
import * as Publish from "../../src/programs/Publish.ts"
import * as Care from "../../src/programs/Care.ts"
import * as Revoke from "../../src/programs/Revoke.ts"
import * as Session from "../../src/programs/Session.ts"
import * as Tickets from "../../src/programs/Tickets.ts"
import type { AccessGrant } from "../../src/services/AccessTokens.ts"
import { AuditLog } from "../../src/services/AuditLog.ts"
import { CareRelationships } from "../../src/services/CareRelationships.ts"
import { Deadlines } from "../../src/services/Deadlines.ts"
import { EventBus } from "../../src/services/EventBus.ts"
import { RateLimiter } from "../../src/services/RateLimiter.ts"
import { Settings } from "../../src/services/Settings.ts"
import { TicketSigner } from "../../src/services/TicketSigner.ts"
import { TicketStore } from "../../src/services/TicketStore.ts"
import { Sessions } from "../../src/services/Sessions.ts"
import { memoryLayer } from "../support/layers.ts"

const ALICE = "pt_alice_0001" as PatientRef
const BOB = "pt_bob_00002" as PatientRef
const CAROL = "cl_carol_001" as ClinicianRef
const ORIGIN = "https://app.example"
/** For tests that send more messages in one instant than a client may. */
const generousRates = { ...defaults.rates, messages: { scope: "message" as const, limit: 1_000, windowMs: 1_000 } }

const aliceChannel = "patient:pt_alice_0001"
const bobChannel = "patient:pt_bob_00002"
const carolChannel = "clinician:cl_carol_001"

const service: Principal = { _tag: "Service", clientId: "svc_backend_01", scopes: ["events:publish", "relationships:write"] }
const admin: Principal = { _tag: "Admin", ref: "ad_root_0001" as SubjectRef, scopes: ["sessions:revoke"] }

const patient = (ref: PatientRef = ALICE, expiresAtS = 3_600): AccessGrant => ({
  principal: { _tag: "Patient", ref },
  expiresAt: expiresAtS,
  issuedAt: 0
})
const clinician = (ref: ClinicianRef = CAROL, expiresAtS = 3_600): AccessGrant => ({
  principal: { _tag: "Clinician", ref },
  expiresAt: expiresAtS,
  issuedAt: 0
})

/** Lets other fibers and pending promises (ticket signature checks) run; no timer involved. */
const tick = Effect.andThen(Effect.yieldNow, Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve))))

/** Polls until `check` holds. The wall-clock bound only turns a hang into a clear failure. */
const eventually = (check: () => boolean, what: () => string) =>
  Effect.gen(function*() {
    const giveUpAt = Date.now() + 10_000
    while (!check()) {
      if (Date.now() > giveUpAt) return yield* Effect.die(new Error(`gave up waiting for ${what()}`))
      yield* tick
    }
  })

const settle = Effect.repeat(tick, { times: 20 })

const publish = (channel: string, ref = "apt_00000001", kind = "appointment.updated") =>
  Publish.publish(service, { channel: Channel.parse(channel)!, kind, ref: ref as EventRef })

/** A client on a fake socket: what it sends goes to the session, what it gets lands in `frames`. */
const connectWith = (
  ticket: string | undefined,
  around: <A, E, R>(session: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R> = (session) => session
) =>
  Effect.gen(function*() {
    const frames: Array<string> = []
    let ended: GatewayError | undefined
    const transport: Session.Transport = {
      origin: ORIGIN,
      peer: "192.0.2.10",
      ticket,
      outbox: {
        offer: (frame) => {
          frames.push(frame)
          return true
        }
      },
      closed: (error) => {
        ended = error
      }
    }
    const session = yield* around(Session.start(transport))
    let cursor = 0
    const client = {
      frames,
      send: (message: unknown) => Effect.sync(() => session.receive(typeof message === "string" ? message : JSON.stringify(message))),
      close: Effect.sync(() => session.end(new ClosedNormally())),
      /** The next frame, parsed, once it has arrived. */
      next: Effect.suspend(() =>
        eventually(() => frames.length > cursor, () => `frame #${cursor + 1} (have ${JSON.stringify(frames)})`).pipe(
          Effect.map(() => JSON.parse(frames[cursor++]!) as Record<string, unknown>)
        )
      ),
      /** Frames not yet read with `next`. */
      unread: () => frames.slice(cursor).map((f) => JSON.parse(f) as Record<string, unknown>),
      isOpen: () => ended === undefined,
      /** The error that ended the session, once it has ended (closed and audited). */
      ended: Effect.suspend(() => eventually(() => ended !== undefined, () => "the session to end").pipe(Effect.map(() => ended!))),
      /** Round trip: a ping answered by its pong proves every earlier message was handled. */
      ping: (id: string) =>
        Effect.gen(function*() {
          yield* client.send({ type: "ping", id })
          expect(yield* client.next).toEqual({ type: "pong", id })
        })
    }
    return client
  })

const connect = (grant: AccessGrant) => Effect.flatMap(Tickets.issue(grant), ({ ticket }) => connectWith(ticket))

/** The v1.1 `welcome`, the first frame of every session (its deadline is the test's to check). */
const welcomed = { type: "welcome", session: expect.stringMatching(/^c-[A-Za-z0-9_-]+$/), expiresAt: expect.any(String), idleTimeoutS: 900 }

/** Connects and proves the session is open (welcomed), registered and answering. */
const open = (grant: AccessGrant) =>
  Effect.tap(connect(grant), (client) =>
    Effect.gen(function*() {
      expect(yield* client.next).toEqual(welcomed)
      yield* client.ping("hello")
    }))

const subscribeOk = (
  client: Effect.Success<ReturnType<typeof open>>,
  id: string,
  channel: string,
  seq: number,
  extra: { since?: number; recovered?: boolean } = {}
) =>
  Effect.gen(function*() {
    yield* client.send({
      type: "subscribe",
      id,
      channel,
      ...(extra.since === undefined ? {} : { since: extra.since })
    })
    expect(yield* client.next).toEqual({ type: "subscribed", id, channel, epoch: anyEpoch, seq, recovered: extra.recovered ?? false })
  })

const anyEpoch = expect.stringMatching(/^[A-Za-z0-9]{8,16}$/)

const eventFrame = (channel: string, seq: number, ref = "apt_00000001", kind = "appointment.updated") => ({
  type: "event",
  channel,
  epoch: anyEpoch,
  seq,
  id: expect.stringMatching(/^evt_[A-Za-z0-9_-]+$/),
  kind,
  ref,
  at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
})

describe("Session.start", () => {
  it("names every service a session uses in its requirements", () => {
    expectTypeOf<Effect.Services<ReturnType<typeof Session.start>>>().toEqualTypeOf<
      Settings | AuditLog | RateLimiter | EventBus | Hub | CareRelationships | Sessions | Deadlines | TicketSigner | TicketStore
    >()
  })

  describe("subscriptions", () => {
    it.effect("gives a patient its own channel: `subscribed` with the channel's seq, then live events in order", () =>
      Effect.gen(function*() {
        yield* publish(aliceChannel, "apt_before_01")
        yield* publish(aliceChannel, "apt_before_02")
        const alice = yield* open(patient())
        yield* subscribeOk(alice, "c1", aliceChannel, 2)
        yield* TestClock.adjust(Duration.seconds(5))
        const accepted = yield* publish(aliceChannel, "apt_live_0001", "message.received")
        yield* publish(bobChannel, "apt_other_001")
        yield* publish(aliceChannel, "apt_live_0002")
        yield* publish(aliceChannel, "apt_live_0003")
        expect(yield* alice.next).toEqual({
          type: "event",
          channel: aliceChannel,
          epoch: anyEpoch,
          seq: 3,
          id: accepted.id,
          kind: "message.received",
          ref: "apt_live_0001",
          at: "1970-01-01T00:00:05.000Z"
        })
        expect(yield* alice.next).toEqual(eventFrame(aliceChannel, 4, "apt_live_0002"))
        expect(yield* alice.next).toEqual(eventFrame(aliceChannel, 5, "apt_live_0003"))
        yield* alice.ping("p1")
        expect(alice.unread()).toEqual([])
        const records = (yield* (yield* MemoryAuditRecords).all)
        expect(records.map((r) => r.event)).toEqual(expect.arrayContaining(["ws.opened", "subscribe.allowed"]))
        expect(JSON.stringify(records)).not.toContain(ALICE)
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("refuses a patient another patient's channel with `forbidden` and stays open", () =>
      Effect.gen(function*() {
        const alice = yield* open(patient())
        yield* alice.send({ type: "subscribe", id: "c1", channel: bobChannel })
        expect(yield* alice.next).toEqual({ type: "error", id: "c1", code: "forbidden" })
        yield* alice.send({ type: "subscribe", id: "c2", channel: carolChannel })
        expect(yield* alice.next).toEqual({ type: "error", id: "c2", code: "forbidden" })
        yield* alice.ping("c3")
        yield* publish(bobChannel)
        yield* alice.ping("c4")
        expect(alice.isOpen()).toBe(true)
        expect((yield* Hub).stats()).toEqual({ channels: 0, subscribers: 0 })
        const denied = (yield* (yield* MemoryAuditRecords).all).filter((r) => r.event === "subscribe.denied")
        expect(denied).toHaveLength(2)
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("refuses a clinician a patient's channel until a care relationship is granted", () =>
      Effect.gen(function*() {
        const carol = yield* open(clinician())
        yield* carol.send({ type: "subscribe", id: "c1", channel: aliceChannel })
        expect(yield* carol.next).toEqual({ type: "error", id: "c1", code: "forbidden" })
        yield* Care.grantCare(service, { clinician: CAROL, patient: ALICE }, undefined)
        yield* subscribeOk(carol, "c2", aliceChannel, 0)
        yield* publish(aliceChannel)
        expect(yield* carol.next).toEqual(eventFrame(aliceChannel, 1))
        // Its own channel needs nothing; another patient is still refused.
        yield* subscribeOk(carol, "c3", carolChannel, 0)
        yield* carol.send({ type: "subscribe", id: "c4", channel: bobChannel })
        expect(yield* carol.next).toEqual({ type: "error", id: "c4", code: "forbidden" })
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("refuses a clinician once the care relationship's end time has passed", () =>
      Effect.gen(function*() {
        yield* Care.grantCare(service, { clinician: CAROL, patient: ALICE }, 60_000)
        const carol = yield* open(clinician())
        yield* subscribeOk(carol, "c1", aliceChannel, 0)
        yield* TestClock.adjust(Duration.seconds(60))
        // The live subscription ends on its own at the end time, then a new one is refused.
        expect(yield* carol.next).toEqual({ type: "error", code: "forbidden", channel: aliceChannel })
        yield* carol.send({ type: "subscribe", id: "c2", channel: aliceChannel })
        expect(yield* carol.next).toEqual({ type: "error", id: "c2", code: "forbidden" })
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("ends a subscription whose care check answered just before the relationship ended (the end announced while the subscribe was in flight)", () => {
      // The care lookup of the subscribe reads the grant, then is held back until the end is announced.
      const gate = { held: false, read: Deferred.makeUnsafe<void>(), release: Deferred.makeUnsafe<void>() }
      const heldCare = Layer.effect(
        CareRelationships,
        Effect.map(CareRelationships, (care: CareRelationships["Service"]) =>
          CareRelationships.of({
            ...care,
            active: (c, p, now) =>
              Effect.flatMap(care.active(c, p, now), (grant) =>
                gate.held
                  ? Effect.andThen(Deferred.succeed(gate.read, undefined), Effect.as(Deferred.await(gate.release), grant))
                  : Effect.succeed(grant))
          }))
      )
      return Effect.gen(function*() {
        yield* Care.grantCare(service, { clinician: CAROL, patient: ALICE }, undefined)
        const carol = yield* open(clinician())
        gate.held = true
        yield* carol.send({ type: "subscribe", id: "c1", channel: aliceChannel })
        yield* Deferred.await(gate.read)
        yield* Care.endCare(service, { clinician: CAROL, patient: ALICE })
        gate.held = false
        yield* Deferred.succeed(gate.release, undefined)
        // The subscribe itself is answered forbidden: nothing of the channel was ever sent.
        expect(yield* carol.next).toEqual({ type: "error", id: "c1", code: "forbidden" })
        yield* carol.ping("p1")
        expect((yield* Hub).stats()).toEqual({ channels: 0, subscribers: 0 })
        expect(carol.isOpen()).toBe(true)
      }).pipe(Effect.provide(memoryLayer({}, { care: heldCare })))
    })

    it.effect("ends a clinician's live subscription when the care relationship ends", () =>
      Effect.gen(function*() {
        yield* Care.grantCare(service, { clinician: CAROL, patient: ALICE }, undefined)
        const carol = yield* open(clinician())
        yield* subscribeOk(carol, "c1", aliceChannel, 0)
        yield* subscribeOk(carol, "c2", carolChannel, 0)
        yield* publish(aliceChannel)
        expect(yield* carol.next).toEqual(eventFrame(aliceChannel, 1))
        yield* Care.endCare(service, { clinician: CAROL, patient: ALICE })
        // Published at once, before the session had any chance to run: must not be delivered.
        yield* publish(aliceChannel, "apt_after_end1")
        expect(yield* carol.next).toEqual({ type: "error", code: "forbidden", channel: aliceChannel })
        yield* publish(aliceChannel, "apt_after_end2")
        yield* publish(carolChannel, "apt_carol_0001")
        expect(yield* carol.next).toEqual(eventFrame(carolChannel, 1, "apt_carol_0001"))
        yield* carol.ping("p1")
        expect(carol.unread()).toEqual([])
        expect(carol.isOpen()).toBe(true)
        // And it cannot subscribe again.
        yield* carol.send({ type: "subscribe", id: "c3", channel: aliceChannel })
        expect(yield* carol.next).toEqual({ type: "error", id: "c3", code: "forbidden" })
        expect((yield* Hub).stats()).toEqual({ channels: 1, subscribers: 1 })
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("ends a clinician's live subscription when the relationship's `until` passes", () =>
      Effect.gen(function*() {
        yield* Care.grantCare(service, { clinician: CAROL, patient: ALICE }, 60_000)
        const carol = yield* open(clinician())
        yield* subscribeOk(carol, "c1", aliceChannel, 0)
        yield* TestClock.adjust(Duration.seconds(59))
        yield* publish(aliceChannel)
        expect(yield* carol.next).toEqual(eventFrame(aliceChannel, 1))
        yield* TestClock.adjust(Duration.seconds(1))
        expect(yield* carol.next).toEqual({ type: "error", code: "forbidden", channel: aliceChannel })
        yield* publish(aliceChannel, "apt_after_until")
        yield* carol.ping("p1")
        expect(carol.unread()).toEqual([])
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("follows a renewed `until`: a later end keeps the subscription, an end in the past ends it", () =>
      Effect.gen(function*() {
        yield* Care.grantCare(service, { clinician: CAROL, patient: ALICE }, 60_000)
        const carol = yield* open(clinician())
        yield* subscribeOk(carol, "c1", aliceChannel, 0)
        yield* Care.grantCare(service, { clinician: CAROL, patient: ALICE }, 600_000)
        yield* TestClock.adjust(Duration.seconds(120))
        yield* publish(aliceChannel)
        expect(yield* carol.next).toEqual(eventFrame(aliceChannel, 1))
        yield* Care.grantCare(service, { clinician: CAROL, patient: ALICE }, 1_000)
        yield* publish(aliceChannel, "apt_after_past")
        expect(yield* carol.next).toEqual({ type: "error", code: "forbidden", channel: aliceChannel })
        yield* carol.ping("p1")
        expect(carol.unread()).toEqual([])
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("keeps delivering when the end-time check finds the relationship still active", () =>
      Effect.gen(function*() {
        // Announcements are lost here (as a dropped cross-node message would be), so only the
        // end-time timer ever re-checks the subscription.
        yield* Care.grantCare(service, { clinician: CAROL, patient: ALICE }, 60_000)
        const carol = yield* open(clinician())
        yield* subscribeOk(carol, "c1", aliceChannel, 0)
        yield* Care.grantCare(service, { clinician: CAROL, patient: ALICE }, 600_000)
        yield* TestClock.adjust(Duration.seconds(61))
        yield* settle
        yield* publish(aliceChannel)
        expect(yield* carol.next).toEqual(eventFrame(aliceChannel, 1))
        yield* TestClock.adjust(Duration.seconds(540))
        expect(yield* carol.next).toEqual({ type: "error", code: "forbidden", channel: aliceChannel })
      }).pipe(Effect.provide(memoryLayer({}, { careAnnouncements: false }))))

    it.effect("drops a subscription whose relationship ended unheard once every session is re-checked", () =>
      Effect.gen(function*() {
        // The end is never announced (as across a pub/sub reconnect); the re-check finds it.
        yield* Care.grantCare(service, { clinician: CAROL, patient: ALICE }, undefined)
        const carol = yield* open(clinician())
        yield* subscribeOk(carol, "c1", aliceChannel, 0)
        yield* subscribeOk(carol, "c2", carolChannel, 0)
        yield* Care.endCare(service, { clinician: CAROL, patient: ALICE })
        yield* carol.ping("p1")
        expect(carol.unread()).toEqual([])
        for (const session of (yield* Sessions).everyLocal()) session.reauthorizeAll()
        expect(yield* carol.next).toEqual({ type: "error", code: "forbidden", channel: aliceChannel })
        // Its own channel stays.
        yield* publish(carolChannel, "apt_carol_0001")
        expect(yield* carol.next).toEqual(eventFrame(carolChannel, 1, "apt_carol_0001"))
      }).pipe(Effect.provide(memoryLayer({}, { careAnnouncements: false }))))

    it.effect("does not disturb the patient's own subscription when a clinician's care ends", () =>
      Effect.gen(function*() {
        yield* Care.grantCare(service, { clinician: CAROL, patient: ALICE }, undefined)
        const alice = yield* open(patient())
        const carol = yield* open(clinician())
        yield* subscribeOk(alice, "a1", aliceChannel, 0)
        yield* subscribeOk(carol, "c1", aliceChannel, 0)
        expect((yield* Hub).stats()).toEqual({ channels: 1, subscribers: 2 })
        yield* Care.endCare(service, { clinician: CAROL, patient: ALICE })
        expect(yield* carol.next).toEqual({ type: "error", code: "forbidden", channel: aliceChannel })
        yield* publish(aliceChannel)
        expect(yield* alice.next).toEqual(eventFrame(aliceChannel, 1))
        yield* carol.ping("p1")
        expect(carol.unread()).toEqual([])
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("unsubscribe answers `unsubscribed` and stops delivery", () =>
      Effect.gen(function*() {
        const alice = yield* open(patient())
        yield* subscribeOk(alice, "c1", aliceChannel, 0)
        yield* publish(aliceChannel)
        expect(yield* alice.next).toEqual(eventFrame(aliceChannel, 1))
        yield* alice.send({ type: "unsubscribe", id: "c2", channel: aliceChannel })
        expect(yield* alice.next).toEqual({ type: "unsubscribed", id: "c2", channel: aliceChannel })
        yield* publish(aliceChannel)
        yield* alice.ping("p1")
        expect(alice.unread()).toEqual([])
        expect((yield* Hub).stats()).toEqual({ channels: 0, subscribers: 0 })
        // Unsubscribing from a channel it never had is answered the same way.
        yield* alice.send({ type: "unsubscribe", id: "c3", channel: bobChannel })
        expect(yield* alice.next).toEqual({ type: "unsubscribed", id: "c3", channel: bobChannel })
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("subscribing twice to one channel delivers each event once", () =>
      Effect.gen(function*() {
        const alice = yield* open(patient())
        yield* subscribeOk(alice, "c1", aliceChannel, 0)
        yield* subscribeOk(alice, "c2", aliceChannel, 0)
        yield* publish(aliceChannel)
        expect(yield* alice.next).toEqual(eventFrame(aliceChannel, 1))
        yield* alice.ping("p1")
        expect(alice.unread()).toEqual([])
        expect((yield* Hub).stats()).toEqual({ channels: 1, subscribers: 1 })
      }).pipe(Effect.provide(memoryLayer())))

    it.effect(`refuses more than ${SUBSCRIPTIONS_PER_CONNECTION} channels on one socket with rate_limited`, () =>
      Effect.gen(function*() {
        const patients = Array.from({ length: SUBSCRIPTIONS_PER_CONNECTION }, (_, i) => `pt_many_${String(i).padStart(4, "0")}` as PatientRef)
        for (const p of patients) yield* Care.grantCare(service, { clinician: CAROL, patient: p }, undefined)
        const carol = yield* open(clinician())
        for (const [i, p] of patients.entries()) yield* subscribeOk(carol, `s${i}`, `patient:${p}`, 0)
        yield* carol.send({ type: "subscribe", id: "over", channel: carolChannel })
        expect(yield* carol.next).toEqual({ type: "error", id: "over", code: "rate_limited" })
        // Re-subscribing to a held channel is still fine.
        yield* subscribeOk(carol, "again", `patient:${patients[0]}`, 0)
        expect((yield* Hub).stats().channels).toBe(SUBSCRIPTIONS_PER_CONNECTION)
      }).pipe(Effect.provide(memoryLayer({ rates: generousRates }))))
  })

  describe("a client that stops reading", () => {
    it.effect("ends with TooSlow when its window is full, audited and counted once, and publishing goes on", () =>
      Effect.gen(function*() {
        const before = (yield* Metric.value(deliveriesFailed)).count
        const { ticket } = yield* Tickets.issue(patient())
        const frames: Array<string> = []
        let ended: GatewayError | undefined
        let session: Session.Inbound | undefined
        // Like server/Connection.ts: room for three frames, then refuse and end the socket.
        const transport: Session.Transport = {
          origin: ORIGIN,
          peer: "192.0.2.10",
          ticket,
          outbox: {
            offer: (frame) => {
              if (frames.length >= 3) {
                session!.end(new TooSlow())
                return false
              }
              frames.push(frame)
              return true
            }
          },
          closed: (error) => {
            ended = error
          }
        }
        session = yield* Session.start(transport)
        session.receive(JSON.stringify({ type: "subscribe", id: "s", channel: aliceChannel }))
        yield* eventually(() => frames.length === 2, () => "welcome and subscribed")
        for (let i = 1; i <= 5; i++) {
          const accepted = yield* publish(aliceChannel, `apt_0000000${i}`)
          expect(accepted.seq).toBe(i)
        }
        yield* eventually(() => ended !== undefined, () => "the session to end")
        expect(ended!._tag).toBe("TooSlow")
        expect(frames.map((f) => JSON.parse(f).type)).toEqual(["welcome", "subscribed", "event"])
        const failed = (yield* (yield* MemoryAuditRecords).all).filter((r) => r.event === "delivery.failed")
        expect(failed).toMatchObject([{ cause: "TooSlow", result: "failed" }])
        expect(failed[0]!.channel).toMatch(/^patient:[0-9a-f]{32}$/)
        expect((yield* Metric.value(deliveriesFailed)).count - before).toBe(1)
      }).pipe(Effect.provide(memoryLayer())))
  })

  describe("rate limits", () => {
    it.effect("answers rate_limited past the message burst, then closes with RateLimited when it goes on", () =>
      Effect.gen(function*() {
        const alice = yield* open(patient())
        const burst = defaults.rates.messages.limit
        // `open` spent one message on its ping.
        for (let i = 1; i < burst; i++) yield* alice.ping(`p${i}`)
        yield* alice.send({ type: "ping", id: "over" })
        expect(yield* alice.next).toEqual({ type: "error", code: "rate_limited" })
        expect(alice.isOpen()).toBe(true)
        for (let i = 0; i < LIMITED_BEFORE_CLOSE; i++) yield* alice.send({ type: "ping", id: `flood${i}` })
        const ended = yield* alice.ended
        expect(ended).toMatchObject({ _tag: "RateLimited", scope: "message" })
        const records = (yield* (yield* MemoryAuditRecords).all)
        expect(records.filter((r) => r.event === "rate.limited" && r.cause === "message")).toHaveLength(1)
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("lets a client that slows down carry on as the bucket refills", () =>
      Effect.gen(function*() {
        const alice = yield* open(patient())
        for (let i = 1; i < defaults.rates.messages.limit; i++) yield* alice.ping(`p${i}`)
        yield* alice.send({ type: "ping", id: "over" })
        expect(yield* alice.next).toEqual({ type: "error", code: "rate_limited" })
        yield* TestClock.adjust(Duration.seconds(1))
        yield* alice.ping("after-a-second")
        expect(alice.isOpen()).toBe(true)
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("limits subscribes per subject across all of its sessions", () =>
      Effect.gen(function*() {
        const first = yield* open(patient())
        const second = yield* open(patient())
        yield* subscribeOk(first, "a", aliceChannel, 0)
        yield* subscribeOk(second, "b", aliceChannel, 0)
        yield* second.send({ type: "subscribe", id: "c", channel: aliceChannel })
        expect(yield* second.next).toEqual({ type: "error", id: "c", code: "rate_limited" })
        yield* TestClock.adjust(Duration.seconds(30))
        yield* subscribeOk(second, "d", aliceChannel, 0)
      }).pipe(Effect.provide(memoryLayer({
        rates: { ...defaults.rates, subscribes: { scope: "subscribe", limit: 2, windowMs: 60_000 } }
      }))))
  })

  describe("since recovery", () => {
    it.effect("replays the events after `since` right after `subscribed`, then goes live", () =>
      Effect.gen(function*() {
        for (const ref of ["apt_00000001", "apt_00000002", "apt_00000003"]) yield* publish(aliceChannel, ref)
        const alice = yield* open(patient())
        yield* subscribeOk(alice, "c1", aliceChannel, 3, { since: 1, recovered: true })
        expect(yield* alice.next).toEqual(eventFrame(aliceChannel, 2, "apt_00000002"))
        expect(yield* alice.next).toEqual(eventFrame(aliceChannel, 3, "apt_00000003"))
        yield* publish(aliceChannel, "apt_00000004")
        expect(yield* alice.next).toEqual(eventFrame(aliceChannel, 4, "apt_00000004"))
        yield* alice.ping("p1")
        expect(alice.unread()).toEqual([])
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("delivers an event published while the subscription is being set up exactly once", () =>
      Effect.gen(function*() {
        for (const ref of ["apt_00000001", "apt_00000002", "apt_00000003"]) yield* publish(aliceChannel, ref)
        const bus = yield* EventBus
        let raced = false
        // A bus on which another publisher gets in between joining (the head) and reading the history.
        const racing = EventBus.of({
          ...bus,
          since: (channel, seq) =>
            Effect.suspend(() => {
              if (raced) return bus.since(channel, seq)
              raced = true
              return Effect.andThen(
                bus.publish({
                  id: "evt_race_000001" as EventId,
                  channel,
                  kind: "appointment.updated",
                  ref: "apt_00000004" as EventRef,
                  at: "1970-01-01T00:00:00.000Z"
                }, "svc_racer/evt_race_000001"),
                bus.since(channel, seq)
              )
            })
        })
        const { ticket } = yield* Tickets.issue(patient())
        const alice = yield* connectWith(ticket, Effect.provideService(EventBus, racing))
        expect(yield* alice.next).toEqual(welcomed)
        yield* alice.ping("hello")
        yield* subscribeOk(alice, "c1", aliceChannel, 3, { since: 1, recovered: true })
        expect(yield* alice.next).toEqual(eventFrame(aliceChannel, 2, "apt_00000002"))
        expect(yield* alice.next).toEqual(eventFrame(aliceChannel, 3, "apt_00000003"))
        expect(yield* alice.next).toEqual(eventFrame(aliceChannel, 4, "apt_00000004"))
        yield* alice.ping("p1")
        expect(raced).toBe(true)
        expect(alice.unread()).toEqual([])
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("answers recovered with nothing to replay when the client is up to date", () =>
      Effect.gen(function*() {
        yield* publish(aliceChannel)
        yield* publish(aliceChannel)
        const alice = yield* open(patient())
        yield* subscribeOk(alice, "c1", aliceChannel, 2, { since: 2, recovered: true })
        yield* alice.ping("p1")
        expect(alice.unread()).toEqual([])
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("answers recovered: false when `since` is ahead of the channel", () =>
      Effect.gen(function*() {
        yield* publish(aliceChannel)
        const alice = yield* open(patient())
        yield* subscribeOk(alice, "c1", aliceChannel, 1, { since: 10, recovered: false })
        yield* alice.ping("p1")
        expect(alice.unread()).toEqual([])
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("answers recovered: false, replaying nothing, when the history no longer reaches back", () =>
      Effect.gen(function*() {
        for (let i = 0; i < 150; i++) yield* publish(aliceChannel)
        const alice = yield* open(patient())
        yield* subscribeOk(alice, "c1", aliceChannel, 150, { since: 1, recovered: false })
        yield* alice.ping("p1")
        expect(alice.unread()).toEqual([])
        yield* publish(aliceChannel)
        expect(yield* alice.next).toEqual(eventFrame(aliceChannel, 151))
      }).pipe(Effect.provide(memoryLayer())))
  })

  describe("protocol abuse", () => {
    it.effect(`answers malformed frames bad_request and fails with ProtocolViolation after ${MALFORMED_BEFORE_CLOSE}`, () =>
      Effect.gen(function*() {
        const alice = yield* open(patient())
        const bad = ["not json", "{}", '{"type":"ping"}', '{"type":"subscribe","id":"c1","channel":"patient:*"}', "[]"]
        for (let i = 0; i < MALFORMED_BEFORE_CLOSE; i++) {
          yield* alice.send(bad[i]!)
          expect(yield* alice.next).toEqual({ type: "error", code: "bad_request" })
          yield* alice.ping(`p${i}`)
        }
        expect(alice.isOpen()).toBe(true)
        yield* alice.send(bad[MALFORMED_BEFORE_CLOSE]!)
        expect((yield* alice.ended)._tag).toBe("ProtocolViolation")
        expect(alice.unread()).toEqual([])
      }).pipe(Effect.provide(memoryLayer())))

    it.effect(`fails with RepeatedDenials after ${DENIALS_BEFORE_CLOSE} denied subscriptions`, () =>
      Effect.gen(function*() {
        const alice = yield* open(patient())
        for (let i = 0; i < DENIALS_BEFORE_CLOSE; i++) {
          const channel = `patient:pt_other_${String(i).padStart(4, "0")}`
          yield* alice.send({ type: "subscribe", id: `d${i}`, channel })
          expect(yield* alice.next).toEqual({ type: "error", id: `d${i}`, code: "forbidden" })
        }
        yield* alice.ping("still-open")
        yield* alice.send({ type: "subscribe", id: "last", channel: bobChannel })
        expect((yield* alice.ended)._tag).toBe("RepeatedDenials")
        expect(alice.unread()).toEqual([])
      }).pipe(Effect.provide(memoryLayer())))
  })

  describe("ends", () => {
    it.effect("fails with TicketRejected, sending nothing, for a missing, forged or reused ticket", () =>
      Effect.gen(function*() {
        const missing = yield* connectWith(undefined)
        expect(yield* missing.ended).toMatchObject({ _tag: "TicketRejected", cause: "missing" })
        const forged = yield* connectWith("a.b.c")
        expect(yield* forged.ended).toMatchObject({ _tag: "TicketRejected", cause: "invalid" })
        const { ticket } = yield* Tickets.issue(patient())
        const first = yield* connectWith(ticket)
        expect(yield* first.next).toEqual(welcomed)
        yield* first.ping("p1")
        const second = yield* connectWith(ticket)
        expect(yield* second.ended).toMatchObject({ _tag: "TicketRejected", cause: "used" })
        for (const client of [missing, forged, second]) expect(client.frames).toEqual([])
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("fails with ClosedNormally when the client closes, releasing its channels", () =>
      Effect.gen(function*() {
        const alice = yield* open(patient())
        yield* subscribeOk(alice, "c1", aliceChannel, 0)
        yield* alice.close
        expect((yield* alice.ended)._tag).toBe("ClosedNormally")
        expect((yield* Hub).stats()).toEqual({ channels: 0, subscribers: 0 })
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("fails with SessionRevoked when its subject is revoked; other subjects stay", () =>
      Effect.gen(function*() {
        const alice1 = yield* open(patient())
        const alice2 = yield* open(patient())
        const bob = yield* open(patient(BOB))
        yield* subscribeOk(alice1, "c1", aliceChannel, 0)
        yield* subscribeOk(bob, "c1", bobChannel, 0)
        yield* Revoke.revokeSubject(admin, ALICE as string as SubjectRef)
        expect((yield* alice1.ended)._tag).toBe("SessionRevoked")
        expect((yield* alice2.ended)._tag).toBe("SessionRevoked")
        yield* bob.ping("p1")
        expect((yield* Hub).stats()).toEqual({ channels: 1, subscribers: 1 })
        // The old access token gets no new ticket; one issued after the revocation opens a session.
        expect((yield* Effect.flip(Tickets.issue(patient())))._tag).toBe("Unauthenticated")
        yield* TestClock.adjust(Duration.seconds(1))
        yield* open({ ...patient(), issuedAt: 1 })
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("refuses a third session of one subject with TooManySessions (cap 2)", () =>
      Effect.gen(function*() {
        const first = yield* open(patient())
        yield* open(patient())
        const third = yield* connect(patient())
        expect((yield* third.ended)._tag).toBe("TooManySessions")
        expect(third.frames).toEqual([])
        // Other subjects have their own cap.
        yield* open(patient(BOB))
        // Closing one makes room again.
        yield* first.close
        yield* first.ended
        yield* open(patient())
      }).pipe(Effect.provide(memoryLayer({ maxSessionsPerSubject: 2 }))))

    // v1.1: idle logoff closes 4410 (SessionIdle), no longer 4408 like the deadline.
    it.effect("fails with SessionIdle after the idle timeout without client messages", () =>
      Effect.gen(function*() {
        const alice = yield* open(patient())
        yield* TestClock.adjust(Duration.seconds(899))
        yield* settle
        expect(alice.isOpen()).toBe(true)
        yield* TestClock.adjust(Duration.seconds(1))
        expect((yield* alice.ended)._tag).toBe("SessionIdle")
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("counts idleness from the last client message", () =>
      Effect.gen(function*() {
        const alice = yield* open(patient())
        yield* TestClock.adjust(Duration.seconds(600))
        yield* alice.ping("p1")
        yield* TestClock.adjust(Duration.seconds(899))
        yield* settle
        expect(alice.isOpen()).toBe(true)
        yield* TestClock.adjust(Duration.seconds(1))
        expect((yield* alice.ended)._tag).toBe("SessionIdle")
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("fails with SessionExpired at the access token's expiry, however active", () =>
      Effect.gen(function*() {
        const alice = yield* open(patient(ALICE, 120))
        yield* TestClock.adjust(Duration.seconds(60))
        yield* alice.ping("p1")
        yield* TestClock.adjust(Duration.seconds(59))
        yield* alice.ping("p2")
        expect(alice.isOpen()).toBe(true)
        yield* TestClock.adjust(Duration.seconds(1))
        expect((yield* alice.ended)._tag).toBe("SessionExpired")
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("fails with SessionExpired at the session maximum (TIDINGS_SESSION_MAX_S)", () =>
      Effect.gen(function*() {
        const alice = yield* open(patient())
        for (let i = 1; i <= 2; i++) {
          yield* TestClock.adjust(Duration.seconds(100))
          yield* alice.ping(`p${i}`)
        }
        yield* TestClock.adjust(Duration.seconds(99))
        yield* settle
        expect(alice.isOpen()).toBe(true)
        yield* TestClock.adjust(Duration.seconds(1))
        expect((yield* alice.ended)._tag).toBe("SessionExpired")
      }).pipe(Effect.provide(memoryLayer({ sessionMaxS: 300 }))))
  })

  describe("refresh", () => {
    it.effect("with a new ticket for the same user answers `refreshed` and extends the deadline", () =>
      Effect.gen(function*() {
        const alice = yield* open(patient(ALICE, 120))
        yield* TestClock.adjust(Duration.seconds(100))
        const { ticket } = yield* Tickets.issue(patient(ALICE, 600))
        yield* alice.send({ type: "refresh", id: "r1", ticket })
        expect(yield* alice.next).toEqual({ type: "refreshed", id: "r1", expiresAt: "1970-01-01T00:10:00.000Z" })
        yield* TestClock.adjust(Duration.seconds(400))
        yield* alice.ping("p1")
        yield* TestClock.adjust(Duration.seconds(99))
        yield* alice.ping("p2")
        expect(alice.isOpen()).toBe(true)
        yield* TestClock.adjust(Duration.seconds(1))
        expect((yield* alice.ended)._tag).toBe("SessionExpired")
      }).pipe(Effect.provide(memoryLayer())))

    it.effect("with a ticket for another user, a used or a bad ticket answers `forbidden` and changes nothing", () =>
      Effect.gen(function*() {
        const alice = yield* open(patient(ALICE, 120))
        yield* TestClock.adjust(Duration.seconds(100))
        const bobs = (yield* Tickets.issue(patient(BOB, 600))).ticket
        yield* alice.send({ type: "refresh", id: "r1", ticket: bobs })
        expect(yield* alice.next).toEqual({ type: "error", id: "r1", code: "forbidden" })
        // Same ref string, other kind of user.
        const sameRefClinician = (yield* Tickets.issue(clinician(ALICE as string as ClinicianRef, 600))).ticket
        yield* alice.send({ type: "refresh", id: "r2", ticket: sameRefClinician })
        expect(yield* alice.next).toEqual({ type: "error", id: "r2", code: "forbidden" })
        const used = (yield* Tickets.issue(patient(ALICE, 600))).ticket
        yield* Tickets.consume(used)
        yield* alice.send({ type: "refresh", id: "r3", ticket: used })
        expect(yield* alice.next).toEqual({ type: "error", id: "r3", code: "forbidden" })
        yield* alice.send({ type: "refresh", id: "r4", ticket: "aaaa.bbbb.cccc" })
        expect(yield* alice.next).toEqual({ type: "error", id: "r4", code: "forbidden" })
        yield* alice.ping("p1")
        yield* TestClock.adjust(Duration.seconds(20))
        expect((yield* alice.ended)._tag).toBe("SessionExpired")
      }).pipe(Effect.provide(memoryLayer())))
  })

  describe("hub", () => {
    it.effect("releases every channel once the sessions end", () =>
      Effect.gen(function*() {
        const hub = yield* Hub
        yield* Care.grantCare(service, { clinician: CAROL, patient: ALICE }, undefined)
        const alice = yield* open(patient())
        const carol = yield* open(clinician())
        const bob = yield* open(patient(BOB))
        yield* subscribeOk(alice, "c1", aliceChannel, 0)
        yield* subscribeOk(carol, "c1", aliceChannel, 0)
        yield* subscribeOk(carol, "c2", carolChannel, 0)
        yield* subscribeOk(bob, "c1", bobChannel, 0)
        expect(hub.stats()).toEqual({ channels: 3, subscribers: 4 })
        yield* alice.close
        yield* alice.ended
        expect(hub.stats()).toEqual({ channels: 3, subscribers: 3 })
        yield* carol.close
        yield* carol.ended
        expect(hub.stats()).toEqual({ channels: 1, subscribers: 1 })
        yield* Revoke.revokeSubject(admin, BOB as string as SubjectRef)
        yield* bob.ended
        expect(hub.stats()).toEqual({ channels: 0, subscribers: 0 })
        // Nothing is left listening: a later subscriber starts from a clean hub.
        yield* publish(aliceChannel)
        const again = yield* open(patient())
        yield* subscribeOk(again, "c1", aliceChannel, 1)
        expect(hub.stats()).toEqual({ channels: 1, subscribers: 1 })
      }).pipe(Effect.provide(memoryLayer())))
  })
})
