// Which clinician may follow which patient, and until when. Every change (a grant, a new
// `until`, an end) is announced to every node, so each can re-check the clinician's live
// subscriptions to that patient at once.
import { Context, type Effect, type Scope } from "effect"
import type { Unavailable } from "../domain/Errors.ts"
import type { ClinicianRef, PatientRef } from "../domain/Ref.ts"

export interface CareChange {
  readonly clinician: ClinicianRef
  readonly patient: PatientRef
}

/** Hears one change, or `undefined` when changes may have been missed: re-check everything. */
export type ChangeListener = (change: CareChange | undefined) => void

export class CareRelationships extends Context.Service<CareRelationships, {
  /** Grants, or replaces the end of, a relationship: until `untilMs`, or with no end when undefined. */
  readonly grant: (clinician: ClinicianRef, patient: PatientRef, untilMs: number | undefined) => Effect.Effect<void, Unavailable>
  /** Ends it. Ending an absent one is not an error. */
  readonly end: (clinician: ClinicianRef, patient: PatientRef) => Effect.Effect<void, Unavailable>
  /** When an active relationship ends (ms; Infinity for never), or undefined when none is active. */
  readonly activeUntil: (clinician: ClinicianRef, patient: PatientRef, nowMs: number) => Effect.Effect<number | undefined, Unavailable>
  /**
   * Listens for changes (from any node) while the scope is open. An interpreter that can miss
   * announcements (pub/sub across a reconnect) says so with `undefined`.
   */
  readonly onChanged: (listener: ChangeListener) => Effect.Effect<void, never, Scope.Scope>
}>()("tidings/CareRelationships") {}
