// Care relationships on Redis: one hash per clinician (patient → end time in ms, or "inf"),
// and every change announced on the control channel so each node re-checks its sessions.
import { Effect, Layer } from "effect"
import type { ClinicianRef, PatientRef } from "../../domain/Ref.ts"
import { CareRelationships } from "../../services/CareRelationships.ts"
import { attempt, RedisClient } from "./Client.ts"
import { ControlChannel } from "./Control.ts"
import { Keys } from "./Keys.ts"

export const layer = Layer.effect(
  CareRelationships,
  Effect.gen(function*() {
    const redis = (yield* RedisClient).commands
    const control = yield* ControlChannel
    const call = attempt("care-relationships")
    const announce = (clinician: string, patient: string) =>
      control.publish({ t: "care", c: clinician, p: patient }, "care-relationships")

    return CareRelationships.of({
      grant: (clinician, patient, untilMs) =>
        call(() => redis.hset(Keys.care(clinician), patient, untilMs === undefined ? "inf" : String(untilMs))).pipe(
          Effect.andThen(announce(clinician, patient))
        ),
      end: (clinician, patient) =>
        call(() => redis.hdel(Keys.care(clinician), patient)).pipe(Effect.andThen(announce(clinician, patient))),
      activeUntil: (clinician, patient, nowMs) =>
        call(() => redis.hget(Keys.care(clinician), patient)).pipe(
          Effect.map((value) => {
            if (value === null) return undefined
            const until = value === "inf" ? Number.POSITIVE_INFINITY : Number(value)
            return until > nowMs ? until : undefined
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
