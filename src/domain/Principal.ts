// Who is acting: the four principals of contract §5, and the one mapping from verified
// access-token claims to them. Anything that does not map cleanly is no principal at all.
import { Schema } from "effect"
import { ClinicianRef, PatientRef, REF_PATTERN, SubjectRef } from "./Ref.ts"

export const Patient = Schema.TaggedStruct("Patient", { ref: PatientRef })
export const Clinician = Schema.TaggedStruct("Clinician", { ref: ClinicianRef })
export const Service = Schema.TaggedStruct("Service", {
  clientId: Schema.String,
  scopes: Schema.Array(Schema.String)
})
export const Admin = Schema.TaggedStruct("Admin", { ref: SubjectRef, scopes: Schema.Array(Schema.String) })

export type Patient = typeof Patient.Type
export type Clinician = typeof Clinician.Type
export type Service = typeof Service.Type
export type Admin = typeof Admin.Type
export type Principal = Patient | Clinician | Service | Admin

/** A user who may hold a WebSocket session. */
export type User = Patient | Clinician

export const Scope = {
  publish: "events:publish",
  relationships: "relationships:write",
  revoke: "sessions:revoke"
} as const

export const Role = Schema.Literals(["patient", "clinician", "admin", "service"])
export type Role = typeof Role.Type

/** The roles that hold WebSocket sessions. */
export type UserRole = "patient" | "clinician"
export const USER_ROLES: ReadonlyArray<UserRole> = ["patient", "clinician"]

/**
 * Who a session belongs to, as sessions, the per-subject cap, revocations, rate limits and
 * audit pseudonyms see it: `role:ref`. A patient and a clinician that share a ref are two
 * subjects (revoking one never closes the other's sessions, and they do not share a cap).
 */
export type Subject = string & { readonly Subject: unique symbol }

export const subjectFor = (role: UserRole, ref: string): Subject => `${role}:${ref}` as Subject

/** The subject a session, a revocation and an audit record speak of. */
export const subjectOf = (user: User): Subject => subjectFor(roleOf(user), user.ref)

export const roleOf = (user: User): UserRole => (user._tag === "Patient" ? "patient" : "clinician")

export const userOf = (role: "patient" | "clinician", ref: string): User =>
  role === "patient" ? { _tag: "Patient", ref: ref as PatientRef } : { _tag: "Clinician", ref: ref as ClinicianRef }

export const hasScope = (principal: Principal, scope: string): boolean =>
  (principal._tag === "Service" || principal._tag === "Admin") && principal.scopes.includes(scope)

const scopesOf = (claim: unknown): ReadonlyArray<string> =>
  typeof claim === "string" ? claim.split(" ").filter((s) => s.length > 0) : []

/**
 * Maps verified claims to a principal: `role` and `ref` for people, `scope` for services
 * and admins; a service's id is its `ref`, `client_id` or `sub`. Undefined means "refuse".
 */
export const fromClaims = (claims: Readonly<Record<string, unknown>>): Principal | undefined => {
  const ref = typeof claims.ref === "string" && REF_PATTERN.test(claims.ref) ? claims.ref : undefined
  switch (claims.role) {
    case "patient":
      return ref === undefined ? undefined : { _tag: "Patient", ref: ref as PatientRef }
    case "clinician":
      return ref === undefined ? undefined : { _tag: "Clinician", ref: ref as ClinicianRef }
    case "admin":
      return ref === undefined ? undefined : { _tag: "Admin", ref: ref as SubjectRef, scopes: scopesOf(claims.scope) }
    case "service": {
      const id = [claims.ref, claims.client_id, claims.sub].find((c): c is string => typeof c === "string" && REF_PATTERN.test(c))
      return id === undefined ? undefined : { _tag: "Service", clientId: id, scopes: scopesOf(claims.scope) }
    }
    default:
      return undefined
  }
}
