// In-memory care relationships for one node: a map with optional end times, and the
// listeners told when one ends.
import { Effect, Layer } from "effect"
import { CareRelationships, type EndedListener } from "../../services/CareRelationships.ts"

export const layer = Layer.sync(CareRelationships, () => {
  const until = new Map<string, number>()
  const listeners = new Set<EndedListener>()
  const key = (clinician: string, patient: string) => `${clinician}|${patient}`
  return CareRelationships.of({
    grant: (clinician, patient, untilMs) =>
      Effect.sync(() => void until.set(key(clinician, patient), untilMs ?? Number.POSITIVE_INFINITY)),
    end: (clinician, patient) =>
      Effect.sync(() => {
        until.delete(key(clinician, patient))
        for (const listener of listeners) listener(clinician, patient)
      }),
    isActive: (clinician, patient, nowMs) => Effect.sync(() => (until.get(key(clinician, patient)) ?? 0) > nowMs),
    onEnded: (listener) =>
      Effect.acquireRelease(
        Effect.sync(() => listeners.add(listener)),
        () => Effect.sync(() => void listeners.delete(listener))
      ).pipe(Effect.asVoid)
  })
})
