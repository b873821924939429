// A channel is `patient:<ref>` or `clinician:<ref>` on the wire and a tagged union inside.
// Parsing is the only way in, so a wildcard, a third kind or a stray character never
// reaches the policy or the bus.
import { Schema, SchemaGetter } from "effect"
import { ClinicianRef, PatientRef } from "./Ref.ts"

export const PatientChannel = Schema.TaggedStruct("patient", { ref: PatientRef })
export type PatientChannel = typeof PatientChannel.Type

export const ClinicianChannel = Schema.TaggedStruct("clinician", { ref: ClinicianRef })
export type ClinicianChannel = typeof ClinicianChannel.Type

export const Channel = Schema.Union([PatientChannel, ClinicianChannel])
export type Channel = typeof Channel.Type

const WIRE = /^(patient|clinician):([A-Za-z0-9_-]{8,64})$/

/** The wire form; also the key of a channel in maps, the bus and Redis. */
export const print = (channel: Channel): string => `${channel._tag}:${channel.ref}`

/** Parses the wire form, or undefined for anything else. */
export const parse = (text: string): Channel | undefined => {
  const match = WIRE.exec(text)
  if (match === null) return undefined
  return match[1] === "patient"
    ? { _tag: "patient", ref: match[2] as PatientRef }
    : { _tag: "clinician", ref: match[2] as ClinicianRef }
}

export const patient = (ref: PatientRef): PatientChannel => ({ _tag: "patient", ref })
export const clinician = (ref: ClinicianRef): ClinicianChannel => ({ _tag: "clinician", ref })

/** `"patient:<ref>"` ⇄ Channel, for use inside message and request schemas. */
export const ChannelFromString = Schema.String.check(
  Schema.isPattern(WIRE, { message: "expected patient:<ref> or clinician:<ref>" })
).pipe(
  Schema.decodeTo(Channel, {
    decode: SchemaGetter.transform((text: string) => parse(text)!),
    encode: SchemaGetter.transform((c: { readonly _tag: string; readonly ref: string }) => `${c._tag}:${c.ref}`)
  })
)
