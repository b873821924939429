// In-memory care relationships for one node: a map with optional end times, and the
// listeners told of every change.
import { Effect, Layer } from "effect"
import type { ClinicianRef, PatientRef } from "../../domain/Ref.ts"
import { CareRelationships, type ChangeListener } from "../../services/CareRelationships.ts"

export const layer = Layer.sync(CareRelationships, () => {
  const until = new Map<string, number>()
  const listeners = new Set<ChangeListener>()
  const key = (clinician: string, patient: string) => `${clinician}|${patient}`
  const announce = (clinician: ClinicianRef, patient: PatientRef) => {
    for (const listener of listeners) listener({ clinician, patient })
  }
  return CareRelationships.of({
    grant: (clinician, patient, untilMs) =>
      Effect.sync(() => {
        until.set(key(clinician, patient), untilMs ?? Number.POSITIVE_INFINITY)
        announce(clinician, patient)
      }),
    end: (clinician, patient) =>
      Effect.sync(() => {
        until.delete(key(clinician, patient))
        announce(clinician, patient)
      }),
    activeUntil: (clinician, patient, nowMs) =>
      Effect.sync(() => {
        const end = until.get(key(clinician, patient))
        return end !== undefined && end > nowMs ? end : undefined
      }),
    onChanged: (listener) =>
      Effect.acquireRelease(
        Effect.sync(() => listeners.add(listener)),
        () => Effect.sync(() => void listeners.delete(listener))
      ).pipe(Effect.asVoid)
  })
})
