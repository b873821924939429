// Specifies the wire format of contract §3: the strict, never-throwing client frame decoder,
// the channel syntax of §4, and the exact JSON of every server frame.
import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import * as Channel from "../../src/domain/Channel.ts"
import { MalformedInput } from "../../src/domain/Errors.ts"
import type { Event } from "../../src/domain/Event.ts"
import type { ClinicianRef, EventId, EventRef, PatientRef } from "../../src/domain/Ref.ts"
import * as Wire from "../../src/domain/Wire.ts"
import { JSON_DEPTH } from "../../src/domain/Limits.ts"

const { decodeClientMessage, isInvalidJson, parseJson } = Wire

const TICKET = "eyJhbGciOiJFUzI1NiIsInR5cCI6InRpZGluZ3MtdGlja2V0K2p3dCJ9.eyJyb2xlIjoicGF0aWVudCJ9.c2lnbmF0dXJlLWJ5dGVz"
const REF = /^[A-Za-z0-9_-]{8,64}$/
const ID = /^[A-Za-z0-9_-]{1,64}$/

const decode = (text: string) => Wire.decodeClientMessage(text)
const accepts = (message: unknown) => {
  const result = decode(JSON.stringify(message))
  if (Result.isFailure(result)) throw new Error(`refused ${JSON.stringify(message)}`)
  return result.success
}
/** Decodes without throwing and answers MalformedInput. */
const expectRefused = (text: string) => {
  let result: ReturnType<typeof decode> | undefined
  expect(() => {
    result = decode(text)
  }).not.toThrow()
  expect(result !== undefined && Result.isFailure(result)).toBe(true)
  if (result !== undefined && Result.isFailure(result)) expect(result.failure).toBeInstanceOf(MalformedInput)
}
const refuses = (message: unknown) => expectRefused(JSON.stringify(message))

const subscribe = (channel: unknown, extra: Record<string, unknown> = {}) => ({
  type: "subscribe",
  id: "c1",
  channel,
  ...extra
})

describe("decodeClientMessage", () => {
  describe("accepts the four messages of contract §3", () => {
    it("subscribe without since, with the channel parsed into a tagged union", () => {
      expect(accepts({ type: "subscribe", id: "c1", channel: "patient:pt_8fK2abcd" })).toEqual({
        type: "subscribe",
        id: "c1",
        channel: { _tag: "patient", ref: "pt_8fK2abcd" }
      })
    })

    it("subscribe with since", () => {
      expect(accepts({ type: "subscribe", id: "c1", channel: "clinician:cl_7hQ9wxyz", since: 41 })).toEqual({
        type: "subscribe",
        id: "c1",
        channel: { _tag: "clinician", ref: "cl_7hQ9wxyz" },
        since: 41
      })
    })

    it("subscribe with since and epoch (v1.1)", () => {
      expect(accepts(subscribe("patient:pt_alice_0001", { since: 41, epoch: "k3Jd92Lq" }))).toMatchObject({
        since: 41,
        epoch: "k3Jd92Lq"
      })
      expect(accepts(subscribe("patient:pt_alice_0001", { epoch: "A".repeat(16) }))).toMatchObject({ epoch: "A".repeat(16) })
    })

    it("subscribe with since 0 and with the largest safe integer", () => {
      expect(accepts(subscribe("patient:pt_8fK2abcd", { since: 0 }))).toMatchObject({ since: 0 })
      expect(accepts(subscribe("patient:pt_8fK2abcd", { since: Number.MAX_SAFE_INTEGER }))).toMatchObject({
        since: Number.MAX_SAFE_INTEGER
      })
    })

    it("unsubscribe", () => {
      expect(accepts({ type: "unsubscribe", id: "c2", channel: "patient:pt_8fK2abcd" })).toEqual({
        type: "unsubscribe",
        id: "c2",
        channel: { _tag: "patient", ref: "pt_8fK2abcd" }
      })
    })

    it("refresh with a JWT-shaped ticket", () => {
      expect(accepts({ type: "refresh", id: "c3", ticket: TICKET })).toEqual({ type: "refresh", id: "c3", ticket: TICKET })
    })

    it("ping", () => {
      expect(accepts({ type: "ping", id: "c4" })).toEqual({ type: "ping", id: "c4" })
    })

    it("ids of 1 and 64 characters of [A-Za-z0-9_-]", () => {
      expect(accepts({ type: "ping", id: "a" })).toEqual({ type: "ping", id: "a" })
      const long = "A-_z9".repeat(12) + "abcd"
      expect(long).toHaveLength(64)
      expect(accepts({ type: "ping", id: long })).toEqual({ type: "ping", id: long })
    })

    it("refs of 8 and 64 characters", () => {
      expect(accepts(subscribe("patient:abcdefgh")).type).toBe("subscribe")
      expect(accepts(subscribe(`patient:${"x".repeat(64)}`)).type).toBe("subscribe")
    })
  })

  describe("refuses, without throwing", () => {
    it("unknown top-level fields", () => {
      refuses({ type: "ping", id: "c1", admin: true })
      refuses(subscribe("patient:pt_8fK2abcd", { filter: "*" }))
      refuses({ type: "refresh", id: "c3", ticket: TICKET, role: "admin" })
    })

    it("wildcards", () => {
      for (const channel of ["patient:*", "patient:pt_*", "*:pt_8fK2abcd", "*", "patient:%", "patient:pt_8fK2abc?"]) {
        refuses(subscribe(channel))
      }
    })

    it("bad refs: too short, too long, spaces, lookalikes, paths, other characters", () => {
      const bad = [
        "patient:abcdefg", // 7
        `patient:${"x".repeat(65)}`,
        "patient:pt 8fK2abcd",
        " patient:pt_8fK2abcd",
        "patient:pt_8fK2abcd ",
        "patient:pt_8fK2abcd\n",
        "patient:pt_8fK2аbcd", // Cyrillic а
        "patient:ｐｔ_８fK2abcd", // full-width
        "patient:pt_8fK2abcd\u200b", // zero-width space
        "patient:abc/../x",
        "patient:abcdefgh/../x",
        "patient:pt.8fK2abcd",
        "patient:pt_8fK2abcd:x",
        "patient::pt_8fK2abcd",
        "patient:",
        "patient"
      ]
      for (const channel of bad) refuses(subscribe(channel))
    })

    it("unknown or differently spelled channel kinds", () => {
      for (const channel of ["nurse:abcdefgh12", "Patient:abcdefgh12", "PATIENT:abcdefgh12", "admin:abcdefgh12"]) {
        refuses(subscribe(channel))
      }
    })

    it("unknown message types", () => {
      for (const type of ["publish", "Subscribe", "PING", "", "auth", "__proto__"]) refuses({ type, id: "c1" })
      refuses({ id: "c1" })
    })

    it("wrong types", () => {
      refuses({ type: "ping", id: 1 })
      refuses({ type: "ping", id: null })
      refuses({ type: "ping", id: ["c1"] })
      refuses({ type: "ping", id: "" })
      refuses({ type: "ping", id: "x".repeat(65) })
      refuses({ type: "ping", id: "c 1" })
      refuses({ type: "ping", id: "c1\u0000" })
      refuses(subscribe("patient:pt_8fK2abcd", { since: -1 }))
      refuses(subscribe("patient:pt_8fK2abcd", { since: 1.5 }))
      refuses(subscribe("patient:pt_8fK2abcd", { since: "41" }))
      refuses(subscribe("patient:pt_8fK2abcd", { since: null }))
      // An epoch is 8–16 of [A-Za-z0-9], nothing else.
      for (const epoch of ["k3Jd92L", "A".repeat(17), "k3Jd92L_", "k3Jd92Lq ", "", 12345678, null]) {
        refuses(subscribe("patient:pt_8fK2abcd", { since: 1, epoch }))
      }
      refuses(subscribe("patient:pt_8fK2abcd", { since: Number.MAX_SAFE_INTEGER + 2 }))
      expectRefused('{"type":"subscribe","id":"c1","channel":"patient:pt_8fK2abcd","since":1e400}')
      refuses(subscribe({ _tag: "patient", ref: "pt_8fK2abcd" }))
      refuses(subscribe(["patient:pt_8fK2abcd"]))
      refuses({ type: "refresh", id: "c3", ticket: 42 })
      refuses({ type: "refresh", id: "c3", ticket: "not-a-jwt" })
      refuses({ type: "refresh", id: "c3", ticket: "a.b" })
      refuses({ type: "refresh", id: "c3", ticket: "a.b.c.d" })
      refuses({ type: "refresh", id: "c3", ticket: "a+b.c/d.e=" })
      refuses({ type: ["ping"], id: "c1" })
    })

    it("missing fields", () => {
      refuses({ type: "subscribe", id: "c1" })
      refuses({ type: "subscribe", channel: "patient:pt_8fK2abcd" })
      refuses({ type: "unsubscribe", id: "c2" })
      refuses({ type: "refresh", id: "c3" })
      refuses({ type: "refresh", ticket: TICKET })
      refuses({ type: "ping" })
      refuses({})
    })

    it("JSON that is not an object", () => {
      for (const text of ["null", "[]", "1", '"x"', "true", "false", "0", '[{"type":"ping","id":"c1"}]']) {
        expectRefused(text)
      }
    })

    it("invalid JSON", () => {
      for (const text of ["", " ", "{", '{"type":"ping","id":"c1"', "{type:'ping'}", "undefined", "NaN", '{"type":"ping","id":"c1"}x', "\u0000"]) {
        expectRefused(text)
      }
    })

    it("deeply nested JSON", () => {
      const depth = 100_000
      expectRefused("[".repeat(depth) + "]".repeat(depth))
      expectRefused('{"a":'.repeat(depth) + "1" + "}".repeat(depth))
      const deep = '{"a":'.repeat(10_000) + "1" + "}".repeat(10_000)
      expectRefused(`{"type":"ping","id":"c1","extra":${deep}}`)
      expectRefused(`{"type":"ping","id":${deep}}`)
      expectRefused(`{"type":"subscribe","id":"c1","channel":${deep}}`)
      expectRefused(`{"type":"subscribe","id":"c1","channel":"patient:pt_8fK2abcd","since":${deep}}`)
    })

    it("huge JSON: a 1 MB string field", () => {
      const huge = "a".repeat(1024 * 1024)
      refuses({ type: "ping", id: huge })
      refuses({ type: "refresh", id: "c3", ticket: `${huge}.${huge}.${huge}` })
      refuses(subscribe(`patient:${huge}`))
      refuses({ type: "ping", id: "c1", padding: huge })
    })

    it("__proto__ and constructor keys", () => {
      expectRefused('{"type":"ping","id":"c1","__proto__":{"admin":true}}')
      expectRefused('{"__proto__":{"type":"ping","id":"c1"}}')
      expectRefused('{"type":"ping","__proto__":{"id":"c1"}}')
      expectRefused('{"type":"ping","id":"c1","constructor":{"prototype":{"admin":true}}}')
      expectRefused('{"constructor":"ping","id":"c1"}')
      expectRefused('{"type":"subscribe","id":"c1","channel":"patient:pt_8fK2abcd","prototype":1}')
      expect(({} as Record<string, unknown>).admin).toBeUndefined()
    })
  })

  describe("on arbitrary input", () => {
    const check = (text: string) => {
      const result = decode(text)
      if (Result.isFailure(result)) {
        expect(result.failure).toBeInstanceOf(MalformedInput)
        return
      }
      const message = result.success
      expect(["subscribe", "unsubscribe", "refresh", "ping"]).toContain(message.type)
      expect(message.id).toMatch(ID)
      if (message.type === "subscribe" || message.type === "unsubscribe") {
        expect(["patient", "clinician"]).toContain(message.channel._tag)
        expect(message.channel.ref).toMatch(REF)
      }
    }
    const stringify = (value: unknown): string => {
      const text = JSON.stringify(value)
      return text === undefined ? "undefined" : text
    }

    it("never throws and answers a valid message or MalformedInput (10,000 runs)", () => {
      fc.assert(
        fc.property(
          fc.oneof(
            fc.string(),
            fc.string({ unit: "binary" }),
            fc.json(),
            fc.anything().map(stringify)
          ),
          check
        ),
        { numRuns: 10_000 }
      )
    })

    it("agrees with an independent model on near-valid messages", () => {
      const field = fc.oneof(
        fc.constant(undefined),
        fc.constantFrom("c1", "", "a".repeat(64), "a".repeat(65), "x y", "патient"),
        fc.constantFrom("patient:pt_8fK2abcd", "clinician:cl_7hQ9wxyz", "patient:*", "nurse:abcdefgh12", "patient:abc"),
        fc.constantFrom(TICKET, "a.b", "x"),
        fc.constantFrom("k3Jd92Lq", "k3Jd92L", "k3Jd92Lq-", "A".repeat(17)),
        fc.integer({ min: -3, max: 3 }),
        fc.constantFrom(1.5, Number.MAX_SAFE_INTEGER, null, true),
        fc.string(),
        fc.anything()
      )
      const keys = ["type", "id", "channel", "since", "epoch", "ticket", "extra"]
      const refArb = fc.stringMatching(/^[A-Za-z0-9_-]{8,64}$/)
      const idArb = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/)
      const channelArb = fc.tuple(fc.constantFrom("patient", "clinician"), refArb).map(([k, r]) => `${k}:${r}`)
      const ticketArb = fc.tuple(
        fc.stringMatching(/^[A-Za-z0-9_-]{1,40}$/),
        fc.stringMatching(/^[A-Za-z0-9_-]{1,40}$/),
        fc.stringMatching(/^[A-Za-z0-9_-]{1,40}$/)
      ).map((parts) => parts.join("."))
      const validMessage: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
        fc.record(
          {
            type: fc.constant("subscribe"),
            id: idArb,
            channel: channelArb,
            since: fc.maxSafeNat(),
            epoch: fc.stringMatching(/^[A-Za-z0-9]{8,16}$/)
          },
          { requiredKeys: ["type", "id", "channel"] }
        ),
        fc.record({ type: fc.constant("unsubscribe"), id: idArb, channel: channelArb }),
        fc.record({ type: fc.constant("refresh"), id: idArb, ticket: ticketArb }),
        fc.record({ type: fc.constant("ping"), id: idArb })
      )
      /** A valid message with one to three keys replaced, removed or added. */
      const nearlyValid = fc.tuple(
        validMessage,
        fc.array(fc.tuple(fc.constantFrom(...keys), field), { minLength: 1, maxLength: 3 })
      ).map(([base, changes]) => {
        const m: Record<string, unknown> = { ...base }
        for (const [key, value] of changes) {
          if (value === undefined) delete m[key]
          else m[key] = value
        }
        return m
      })
      const message = fc.oneof(validMessage, nearlyValid)
      const isId = (v: unknown) => typeof v === "string" && ID.test(v)
      const isChannel = (v: unknown) => typeof v === "string" && /^(patient|clinician):[A-Za-z0-9_-]{8,64}$/.test(v)
      const isEpoch = (v: unknown) => typeof v === "string" && /^[A-Za-z0-9]{8,16}$/.test(v)
      const isSeq = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0
      const isTicket = (v: unknown) =>
        typeof v === "string" && /^[A-Za-z0-9_-]{1,1024}\.[A-Za-z0-9_-]{1,2048}\.[A-Za-z0-9_-]{1,512}$/.test(v)
      const hasOnly = (m: Record<string, unknown>, keys: ReadonlyArray<string>) =>
        Object.keys(m).every((k) => keys.includes(k))
      const valid = (m: Record<string, unknown>): boolean => {
        switch (m.type) {
          case "subscribe":
            return hasOnly(m, ["type", "id", "channel", "since", "epoch"]) && isId(m.id) && isChannel(m.channel) &&
              (!("since" in m) || isSeq(m.since)) && (!("epoch" in m) || isEpoch(m.epoch))
          case "unsubscribe":
            return hasOnly(m, ["type", "id", "channel"]) && isId(m.id) && isChannel(m.channel)
          case "refresh":
            return hasOnly(m, ["type", "id", "ticket"]) && isId(m.id) && isTicket(m.ticket)
          case "ping":
            return hasOnly(m, ["type", "id"]) && isId(m.id)
          default:
            return false
        }
      }
      let accepted = 0
      let refused = 0
      fc.assert(
        fc.property(message, (m) => {
          const text = JSON.stringify(m)
          const roundTripped = JSON.parse(text) as Record<string, unknown>
          const result = decode(text)
          expect(Result.isSuccess(result)).toBe(valid(roundTripped))
          if (Result.isSuccess(result)) accepted += 1
          else refused += 1
        }),
        { numRuns: 10_000 }
      )
      expect(accepted).toBeGreaterThan(1_000)
      expect(refused).toBeGreaterThan(1_000)
    })
  })
})

describe("Channel", () => {
  const ref = fc.stringMatching(/^[A-Za-z0-9_-]{8,64}$/)
  const kind = fc.constantFrom("patient", "clinician")

  it("parse then print is the identity on every valid channel", () => {
    fc.assert(
      fc.property(kind, ref, (k, r) => {
        const text = `${k}:${r}`
        const channel = Channel.parse(text)
        expect(channel).toEqual({ _tag: k, ref: r })
        expect(Channel.print(channel!)).toBe(text)
      })
    )
  })

  it("print then parse is the identity", () => {
    fc.assert(
      fc.property(ref, (r) => {
        const p = Channel.patient(r as PatientRef)
        const c = Channel.clinician(r as ClinicianRef)
        expect(Channel.parse(Channel.print(p))).toEqual(p)
        expect(Channel.parse(Channel.print(c))).toEqual(c)
      })
    )
  })

  it("parses nothing outside `(patient|clinician):[A-Za-z0-9_-]{8,64}`", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), kind.chain((k) => fc.string().map((s) => `${k}:${s}`))), (text) => {
        const valid = /^(patient|clinician):[A-Za-z0-9_-]{8,64}$/.test(text)
        expect(Channel.parse(text) !== undefined).toBe(valid)
      }),
      { numRuns: 5_000 }
    )
    for (const text of ["patient:*", "nurse:abcdefgh12", "patient:abc/../x", "patient:abcdefgh\n"]) {
      expect(Channel.parse(text)).toBeUndefined()
    }
  })
})

describe("server frames", () => {
  const channel = Channel.patient("pt_8fK2abcd" as PatientRef)

  it("welcome (v1.1): the session's id, deadline and idle timeout", () => {
    expect(Wire.welcome("c-8Jd0aQ2xLm3N", new Date("2026-11-22T18:00:00.000Z"), 900)).toBe(
      '{"type":"welcome","session":"c-8Jd0aQ2xLm3N","expiresAt":"2026-11-22T18:00:00.000Z","idleTimeoutS":900}'
    )
  })

  it("subscribed, with the channel's epoch (v1.1)", () => {
    expect(Wire.subscribed("c1", channel, { epoch: "k3Jd92Lq", seq: 57 }, true)).toBe(
      '{"type":"subscribed","id":"c1","channel":"patient:pt_8fK2abcd","epoch":"k3Jd92Lq","seq":57,"recovered":true}'
    )
    expect(JSON.parse(Wire.subscribed("c1", channel, { epoch: "k3Jd92Lq", seq: 0 }, false))).toEqual({
      type: "subscribed",
      id: "c1",
      channel: "patient:pt_8fK2abcd",
      epoch: "k3Jd92Lq",
      seq: 0,
      recovered: false
    })
  })

  it("reset (v1.1): the channel's current epoch and head", () => {
    expect(Wire.reset(channel, { epoch: "Zq81mN0pXw4e", seq: 0 })).toBe(
      '{"type":"reset","channel":"patient:pt_8fK2abcd","epoch":"Zq81mN0pXw4e","seq":0}'
    )
  })

  it("event", () => {
    const event: Event = {
      channel,
      epoch: "k3Jd92Lq",
      seq: 58,
      id: "evt_0123456789" as EventId,
      kind: "appointment.updated",
      ref: "apt_0123456789" as EventRef,
      at: "2026-11-22T10:00:00.000Z"
    }
    expect(Wire.event(event)).toBe(
      '{"type":"event","channel":"patient:pt_8fK2abcd","epoch":"k3Jd92Lq","seq":58,"id":"evt_0123456789","kind":"appointment.updated","ref":"apt_0123456789","at":"2026-11-22T10:00:00.000Z"}'
    )
  })

  it("event carries nothing but the fields of contract §4, even if the value has more", () => {
    const event = {
      channel,
      epoch: "k3Jd92Lq",
      seq: 1,
      id: "evt_0123456789" as EventId,
      kind: "message.received",
      ref: "msg_0123456789" as EventRef,
      at: "2026-11-22T10:00:00.000Z",
      body: "PHI"
    } as Event
    expect(Object.keys(JSON.parse(Wire.event(event)))).toEqual(["type", "channel", "epoch", "seq", "id", "kind", "ref", "at"])
    expect(Wire.event(event)).not.toContain("PHI")
  })

  it("unsubscribed", () => {
    expect(Wire.unsubscribed("c2", channel)).toBe('{"type":"unsubscribed","id":"c2","channel":"patient:pt_8fK2abcd"}')
  })

  it("refreshed", () => {
    expect(Wire.refreshed("c3", new Date("2026-11-22T18:00:00.000Z"))).toBe(
      '{"type":"refreshed","id":"c3","expiresAt":"2026-11-22T18:00:00.000Z"}'
    )
  })

  it("pong", () => {
    expect(Wire.pong("c4")).toBe('{"type":"pong","id":"c4"}')
  })

  it("error: an answer to a message, a lost subscription, or neither", () => {
    expect(Wire.error("c1", "forbidden")).toBe('{"type":"error","id":"c1","code":"forbidden"}')
    expect(Wire.error(undefined, "forbidden", channel)).toBe(
      '{"type":"error","code":"forbidden","channel":"patient:pt_8fK2abcd"}'
    )
    expect(Wire.error(undefined, "bad_request")).toBe('{"type":"error","code":"bad_request"}')
    for (const code of ["bad_request", "forbidden", "rate_limited", "unavailable"] as const) {
      expect(JSON.parse(Wire.error("x", code))).toEqual({ type: "error", id: "x", code })
    }
  })
})

describe("JSON depth", () => {
  it("refuses nesting deeper than JSON_DEPTH before parsing, and counts only outside strings", () => {
    const nested = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`
    expect(isInvalidJson(parseJson(nested(JSON_DEPTH)))).toBe(false)
    expect(isInvalidJson(parseJson(nested(JSON_DEPTH + 1)))).toBe(true)
    expect(isInvalidJson(parseJson(`{"a":{"b":{"c":{"d":{}}}}}`))).toBe(true)
    // Brackets inside strings, escaped quotes included, are not nesting.
    expect(parseJson(`{"id":"[[[[[[\\"{{{{{{"}`)).toEqual({ id: `[[[[[["{{{{{{` })
    const message = decodeClientMessage(`{"type":"ping","id":"c1","x":[[[[[[]]]]]]}`)
    expect(Result.isFailure(message)).toBe(true)
  })
})
