// Which clinician may follow which patient, and for how long. An ended relationship is
// announced to every node, so each can end the clinician's live subscription at once.
import { Context, type Effect, type Scope } from "effect"
import type { Unavailable } from "../domain/Errors.ts"
import type { ClinicianRef, PatientRef } from "../domain/Ref.ts"

export type EndedListener = (clinician: ClinicianRef, patient: PatientRef) => void

export class CareRelationships extends Context.Service<CareRelationships, {
  /** Grants (or renews) until `untilMs`, or with no end when undefined. */
  readonly grant: (clinician: ClinicianRef, patient: PatientRef, untilMs: number | undefined) => Effect.Effect<void, Unavailable>
  /** Ends it and tells every node's `onEnded` listeners. Ending an absent one is not an error. */
  readonly end: (clinician: ClinicianRef, patient: PatientRef) => Effect.Effect<void, Unavailable>
  readonly isActive: (clinician: ClinicianRef, patient: PatientRef, nowMs: number) => Effect.Effect<boolean, Unavailable>
  /** Listens for ended relationships (from any node) while the scope is open. */
  readonly onEnded: (listener: EndedListener) => Effect.Effect<void, never, Scope.Scope>
}>()("tidings/CareRelationships") {}
