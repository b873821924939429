// In-memory care relationships for one node: a map with optional end times, and the
// listeners told of every change.
import { Effect, Layer } from "effect"
import { subjectFor } from "../../domain/Principal.ts"
import type { ClinicianRef, PatientRef } from "../../domain/Ref.ts"
import { type ActiveGrant, type CareChange, CareRelationships, type ChangeListener } from "../../services/CareRelationships.ts"

export const layer = Layer.sync(CareRelationships, () => {
  const grants = new Map<string, ActiveGrant>()
  const listeners = new Set<ChangeListener>()
  const key = (clinician: string, patient: string) => `${clinician}|${patient}`
  const announce = (clinician: ClinicianRef, patient: PatientRef) => {
    const subject = subjectFor("clinician", clinician)
    const change: CareChange = { is: (c, p) => c === clinician && p === patient, touches: (s) => s === subject }
    for (const listener of listeners) listener(change)
  }
  return CareRelationships.of({
    grant: (clinician, patient, untilMs, nowMs) =>
      Effect.sync(() => {
        const previous = grants.get(key(clinician, patient))
        const since = previous !== undefined && previous.until > nowMs ? previous.since : nowMs
        grants.set(key(clinician, patient), { since, until: untilMs ?? Number.POSITIVE_INFINITY })
        announce(clinician, patient)
      }),
    end: (clinician, patient) =>
      Effect.sync(() => {
        grants.delete(key(clinician, patient))
        announce(clinician, patient)
      }),
    active: (clinician, patient, nowMs) =>
      Effect.sync(() => {
        const grant = grants.get(key(clinician, patient))
        return grant !== undefined && grant.until > nowMs ? grant : undefined
      }),
    onChanged: (listener) =>
      Effect.acquireRelease(
        Effect.sync(() => listeners.add(listener)),
        () => Effect.sync(() => void listeners.delete(listener))
      ).pipe(Effect.asVoid)
  })
})
