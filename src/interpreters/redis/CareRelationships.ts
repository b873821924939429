// Care relationships on Redis: one hash per clinician, named by the clinician's pseudonym
// (patient's channel pseudonym → "<since ms>|<until ms or inf>"), and every change announced on
// the control channel, as pseudonyms, so each node re-checks its sessions. A grant reads and
// writes its field in one script, so a renewal keeps the running `since`, and drops run-out
// relationships: the hash lives until its last relationship's end.
import { Effect, Layer } from "effect"
import * as Channel from "../../domain/Channel.ts"
import { type Subject, subjectFor } from "../../domain/Principal.ts"
import type { ClinicianRef, PatientRef } from "../../domain/Ref.ts"
import { type ActiveGrant, CareRelationships } from "../../services/CareRelationships.ts"
import { attempt, RedisClient } from "./Client.ts"
import { ControlChannel } from "./Control.ts"
import { DataKeys } from "./DataKey.ts"
import { named } from "./Keys.ts"
import * as Script from "./Script.ts"

// KEYS: the clinician's hash. ARGV: patient, until ("inf" or ms), now ms.
// A relationship still active keeps its since; an absent, ended or run-out one starts now.
// Every run-out field goes, and the hash expires with its last end (never, while one has none).
export const GRANT = Script.make<[care: string], [patient: string, until: string, now: number], number>(`
local now = tonumber(ARGV[3])
local previous = redis.call('HGET', KEYS[1], ARGV[1])
local since = ARGV[3]
if previous then
  local bar = string.find(previous, '|', 1, true)
  local until_ = bar and string.sub(previous, bar + 1) or previous
  if until_ == 'inf' or tonumber(until_) > now then
    since = bar and string.sub(previous, 1, bar - 1) or '0'
  end
end
redis.call('HSET', KEYS[1], ARGV[1], since .. '|' .. ARGV[2])
local last = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local value = fields[i + 1]
  local until_ = string.match(value, '([^|]*)$')
  if until_ == 'inf' then
    last = nil
  elseif tonumber(until_) <= now then
    redis.call('HDEL', KEYS[1], fields[i])
  elseif last and tonumber(until_) > last then
    last = tonumber(until_)
  end
end
-- Relative to the caller's clock, as every time here is.
if last then redis.call('PEXPIRE', KEYS[1], math.max(1, last - now)) else redis.call('PERSIST', KEYS[1]) end
return 1
`)

/** "<since>|<until>" (or a bare until, written before grants kept their start: since 0). */
const decodeGrant = (value: string): ActiveGrant => {
  const bar = value.indexOf("|")
  const until = bar < 0 ? value : value.slice(bar + 1)
  return {
    since: bar < 0 ? 0 : Number(value.slice(0, bar)),
    until: until === "inf" ? Number.POSITIVE_INFINITY : Number(until)
  }
}

/** Subjects' pseudonyms remembered at most (a few MB). */
const TAG_MEMO = 50_000

export const layer = Layer.effect(
  CareRelationships,
  Effect.gen(function*() {
    const redis = (yield* RedisClient).commands
    const control = yield* ControlChannel
    const call = attempt("care-relationships")
    const keys = named((yield* DataKeys).name)
    const clinicianOf = (clinician: ClinicianRef) => subjectFor("clinician", clinician)
    const fieldOf = (patient: PatientRef) => keys.channelTag(Channel.patient(patient))
    // Subjects' pseudonyms, remembered: a change is matched against every local session, and
    // the relationships of a clinician are read each cycle; an HMAC each time would cost
    // milliseconds per change on a busy node. Bounded.
    const tags = new Map<Subject, string>()
    const tagOf = (subject: Subject) => {
      let tag = tags.get(subject)
      if (tag === undefined) {
        if (tags.size >= TAG_MEMO) tags.clear()
        tag = keys.subjectTag(subject)
        tags.set(subject, tag)
      }
      return tag
    }
    /** A relationship's hash, field and clinician pseudonym, each named once. */
    const relationship = (clinician: ClinicianRef, patient: PatientRef) => {
      const tag = tagOf(clinicianOf(clinician))
      return { tag, key: keys.careOfTag(tag), field: fieldOf(patient) }
    }
    const announce = (at: { readonly tag: string; readonly field: string }) =>
      control.publish({ t: "care", c: at.tag, p: at.field }, "care-relationships")

    return CareRelationships.of({
      grant: (clinician, patient, untilMs, nowMs) =>
        Effect.suspend(() => {
          const at = relationship(clinician, patient)
          return call(() => GRANT.run(redis, [at.key], [at.field, untilMs === undefined ? "inf" : String(untilMs), nowMs])).pipe(
            Effect.andThen(announce(at))
          )
        }),
      end: (clinician, patient) =>
        Effect.suspend(() => {
          const at = relationship(clinician, patient)
          return call(() => redis.hdel(at.key, at.field)).pipe(Effect.andThen(announce(at)))
        }),
      active: (clinician, patient, nowMs) =>
        Effect.suspend(() => {
          const at = relationship(clinician, patient)
          return call(() => redis.hget(at.key, at.field))
        }).pipe(
          Effect.map((value) => {
            if (value === null) return undefined
            const grant = decodeGrant(value)
            return grant.until > nowMs ? grant : undefined
          })
        ),
      onChanged: (listener) =>
        Effect.gen(function*() {
          yield* control.listen((message) => {
            if (message.t !== "care") return
            listener({
              is: (clinician, patient) => tagOf(clinicianOf(clinician)) === message.c && fieldOf(patient) === message.p,
              touches: (subject) => tagOf(subject) === message.c
            })
          })
          // Announcements sent while the control connection was away are gone: re-check all.
          // (The session registry's reconciliation re-checks them periodically as well.)
          yield* control.onReconnect(() => listener(undefined))
        })
    })
  })
)
