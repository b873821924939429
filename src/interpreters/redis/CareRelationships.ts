// Care relationships on Redis: one hash per clinician (patient → "<since ms>|<until ms or inf>"),
// and every change announced on the control channel so each node re-checks its sessions. A
// grant reads and writes its field in one script, so a renewal keeps the running `since`.
import { Effect, Layer } from "effect"
import type { ClinicianRef, PatientRef } from "../../domain/Ref.ts"
import { type ActiveGrant, CareRelationships } from "../../services/CareRelationships.ts"
import { attempt, RedisClient } from "./Client.ts"
import { ControlChannel } from "./Control.ts"
import { Keys } from "./Keys.ts"
import * as Script from "./Script.ts"

// KEYS: the clinician's hash. ARGV: patient, until ("inf" or ms), now ms.
// A relationship still active keeps its since; an absent, ended or run-out one starts now.
const GRANT = Script.make<[care: string], [patient: string, until: string, now: number], number>(`
local previous = redis.call('HGET', KEYS[1], ARGV[1])
local since = ARGV[3]
if previous then
  local bar = string.find(previous, '|', 1, true)
  local until_ = bar and string.sub(previous, bar + 1) or previous
  if until_ == 'inf' or tonumber(until_) > tonumber(ARGV[3]) then
    since = bar and string.sub(previous, 1, bar - 1) or '0'
  end
end
redis.call('HSET', KEYS[1], ARGV[1], since .. '|' .. ARGV[2])
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

export const layer = Layer.effect(
  CareRelationships,
  Effect.gen(function*() {
    const redis = (yield* RedisClient).commands
    const control = yield* ControlChannel
    const call = attempt("care-relationships")
    const announce = (clinician: string, patient: string) =>
      control.publish({ t: "care", c: clinician, p: patient }, "care-relationships")

    return CareRelationships.of({
      grant: (clinician, patient, untilMs, nowMs) =>
        call(() => GRANT.run(redis, [Keys.care(clinician)], [patient, untilMs === undefined ? "inf" : String(untilMs), nowMs])).pipe(
          Effect.andThen(announce(clinician, patient))
        ),
      end: (clinician, patient) =>
        call(() => redis.hdel(Keys.care(clinician), patient)).pipe(Effect.andThen(announce(clinician, patient))),
      active: (clinician, patient, nowMs) =>
        call(() => redis.hget(Keys.care(clinician), patient)).pipe(
          Effect.map((value) => {
            if (value === null) return undefined
            const grant = decodeGrant(value)
            return grant.until > nowMs ? grant : undefined
          })
        ),
      onChanged: (listener) =>
        Effect.gen(function*() {
          yield* control.listen((message) => {
            if (message.t === "care") listener({ clinician: message.c as ClinicianRef, patient: message.p as PatientRef })
          })
          // Announcements sent while the control connection was away are gone: re-check all.
          // (The session registry's reconciliation re-checks them periodically as well.)
          yield* control.onReconnect(() => listener(undefined))
        })
    })
  })
)
