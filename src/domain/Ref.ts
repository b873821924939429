// Opaque identifiers as they appear on the wire. Every ref the gateway accepts is
// `[A-Za-z0-9_-]{8,64}` (contract §4), so no ref can smuggle a name, a space or markup.
import { Schema } from "effect"

export const REF_PATTERN = /^[A-Za-z0-9_-]{8,64}$/

const opaque = Schema.String.check(Schema.isPattern(REF_PATTERN, { message: "expected an opaque reference" }))

export const PatientRef = opaque.pipe(Schema.brand("PatientRef"))
export type PatientRef = typeof PatientRef.Type

export const ClinicianRef = opaque.pipe(Schema.brand("ClinicianRef"))
export type ClinicianRef = typeof ClinicianRef.Type

/** The ref of whoever a session or token belongs to: patient, clinician or admin. */
export const SubjectRef = opaque.pipe(Schema.brand("SubjectRef"))
export type SubjectRef = typeof SubjectRef.Type

export const EventId = opaque.pipe(Schema.brand("EventId"))
export type EventId = typeof EventId.Type

/** What an event points at (an appointment, a message, a result): fetched by the app, never by us. */
export const EventRef = opaque.pipe(Schema.brand("EventRef"))
export type EventRef = typeof EventRef.Type

/** A ticket's unique id: consumed at most once. */
export const Jti = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_-]{16,64}$/)).pipe(Schema.brand("Jti"))
export type Jti = typeof Jti.Type

/** A client's correlation id on a frame: 1–64 of `[A-Za-z0-9_-]`. */
export const CorrelationId = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_-]{1,64}$/)).pipe(
  Schema.brand("CorrelationId")
)
export type CorrelationId = typeof CorrelationId.Type

/** Casts a string already known to match REF_PATTERN (after a Schema decode or a regex test). */
export const isRef = (s: string): boolean => REF_PATTERN.test(s)
