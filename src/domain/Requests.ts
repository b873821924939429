// Bodies of the HTTPS endpoints (contract §2), decoded strictly: unknown fields, wrong types
// and malformed values are a 400 before any other work.
import { Result, Schema } from "effect"
import { MalformedInput } from "./Errors.ts"
import { PublishRequest } from "./Event.ts"
import { BATCH_EVENTS } from "./Limits.ts"
import { Role } from "./Principal.ts"
import { ClinicianRef, PatientRef, REF_PATTERN, SubjectRef } from "./Ref.ts"
import { isInvalidJson, parseJson } from "./Wire.ts"

const IsoTime = Schema.String.check(
  Schema.isPattern(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/),
  Schema.makeFilter((s: string) => !Number.isNaN(Date.parse(s)) || "expected an ISO time")
)

/**
 * `POST /v1/tickets`: empty or `{}`. Not `Struct({})`, which accepts any object, array or
 * string whatever the excess-property option says.
 */
export const TicketRequest = Schema.Record(Schema.String, Schema.Never)

export const CareGrant = Schema.Struct({
  clinician: ClinicianRef,
  patient: PatientRef,
  until: Schema.optionalKey(IsoTime)
})
export type CareGrant = typeof CareGrant.Type

export const CareEnd = Schema.Struct({ clinician: ClinicianRef, patient: PatientRef })
export type CareEnd = typeof CareEnd.Type

/** Without `role`, every role of that ref is revoked (a patient and a clinician may share one). */
export const Revocation = Schema.Struct({
  subject: SubjectRef,
  role: Schema.optionalKey(Schema.Literals(["patient", "clinician"]))
})

export const DevTokenRequest = Schema.Struct({
  role: Role,
  ref: Schema.String.check(Schema.isPattern(REF_PATTERN))
})

export { PublishRequest }

/**
 * `POST /v1/events/batch`: `{"events":[…]}` with 1 to 100 items. The items are decoded one by
 * one (`decodeBatchEvent`), so a bad event is refused alone and the others go on.
 */
export const PublishBatch = Schema.Struct({
  events: Schema.Array(Schema.Unknown).check(Schema.isMinLength(1), Schema.isMaxLength(BATCH_EVENTS))
})

const decodeEvent = Schema.decodeUnknownResult(PublishRequest, { onExcessProperty: "error" })

/** One item of a batch, as strictly as the body of `POST /v1/events`. */
export const decodeBatchEvent = (item: unknown): Result.Result<PublishRequest, MalformedInput> =>
  Result.mapError(decodeEvent(item), () => new MalformedInput())

/**
 * JSON text → the schema's type, or MalformedInput. An empty body counts as `{}` so that
 * endpoints taking no fields accept both.
 */
export const decodeBody = <S extends Schema.Top & { readonly DecodingServices: never }>(schema: S) => {
  const decode = Schema.decodeUnknownResult(schema, { onExcessProperty: "error" })
  return (text: string): Result.Result<S["Type"], MalformedInput> => {
    const json = text.length === 0 ? {} : parseJson(text)
    if (isInvalidJson(json)) return Result.fail(new MalformedInput())
    return Result.mapError(decode(json), () => new MalformedInput())
  }
}
