// Dev mode's demo data: two patients, two clinicians and one care relationship, so the whole
// flow works at once. The same refs are listed in the README and used by `npm run demo`.
import { Clock, Effect, Layer } from "effect"
import { ClinicianRef, PatientRef } from "./domain/Ref.ts"
import { CareRelationships } from "./services/CareRelationships.ts"

const patient = (s: string) => PatientRef.make(s)
const clinician = (s: string) => ClinicianRef.make(s)

export const DEMO = {
  patients: [patient("pt_alice_0001"), patient("pt_bob_000002")],
  clinicians: [clinician("cl_carol_0001"), clinician("cl_dave_00002")],
  /** cl_carol_0001 cares for pt_alice_0001. */
  care: [[clinician("cl_carol_0001"), patient("pt_alice_0001")]]
} as const

export const layer = Layer.effectDiscard(Effect.gen(function*() {
  const care = yield* CareRelationships
  const now = yield* Clock.currentTimeMillis
  for (const [c, p] of DEMO.care) yield* care.grant(c, p, undefined, now)
}))
