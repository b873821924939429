// Which clinician may follow which patient, and until when. Every change (a grant, a new
// `until`, an end) is announced to every node, so each can re-check the clinician's live
// subscriptions to that patient at once.
import { Context, type Effect, type Scope } from "effect"
import type { Unavailable } from "../domain/Errors.ts"
import type { Subject } from "../domain/Principal.ts"
import type { ClinicianRef, PatientRef } from "../domain/Ref.ts"

/**
 * One changed relationship, as a node can recognise it: announcements between nodes carry
 * pseudonyms only, so a listener asks whether the change is the one it has in mind.
 */
export interface CareChange {
  /** Whether it is the relationship of this clinician with this patient. */
  readonly is: (clinician: ClinicianRef, patient: PatientRef) => boolean
  /** Whether it is one of this subject's relationships (a clinician's; never a patient's). */
  readonly touches: (subject: Subject) => boolean
}

/** Hears one change, or `undefined` when changes may have been missed: re-check everything. */
export type ChangeListener = (change: CareChange | undefined) => void

/**
 * An active relationship: since when it has been active without a break (ms), and when it ends
 * (ms; Infinity for never). `since` bounds what a clinician may be replayed: nothing published
 * before the current grant began, so a gap between an end and a new grant stays closed.
 */
export interface ActiveGrant {
  readonly since: number
  readonly until: number
}

export class CareRelationships extends Context.Service<CareRelationships, {
  /**
   * Grants, or replaces the end of, a relationship: until `untilMs`, or with no end when
   * undefined. A grant that finds the relationship still active keeps its `since`; otherwise
   * (none, ended, or run out) it begins at `nowMs`.
   */
  readonly grant: (
    clinician: ClinicianRef,
    patient: PatientRef,
    untilMs: number | undefined,
    nowMs: number
  ) => Effect.Effect<void, Unavailable>
  /** Ends it. Ending an absent one is not an error. */
  readonly end: (clinician: ClinicianRef, patient: PatientRef) => Effect.Effect<void, Unavailable>
  /** The relationship active at `nowMs`, or undefined when none is. */
  readonly active: (clinician: ClinicianRef, patient: PatientRef, nowMs: number) => Effect.Effect<ActiveGrant | undefined, Unavailable>
  /**
   * Listens for changes (from any node) while the scope is open. An interpreter that can miss
   * announcements (pub/sub across a reconnect) says so with `undefined`.
   */
  readonly onChanged: (listener: ChangeListener) => Effect.Effect<void, never, Scope.Scope>
}>()("tidings/CareRelationships") {}
