// Specifies who may subscribe to what (contract §5) as one pure, deny-by-default decision:
// people see their own channel; a clinician sees a patient only through a care relationship.
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import * as Channel from "../../src/domain/Channel.ts"
import { canSubscribe, type Decision } from "../../src/domain/Policy.ts"
import type { Principal } from "../../src/domain/Principal.ts"
import type { ClinicianRef, PatientRef, SubjectRef } from "../../src/domain/Ref.ts"

const alice = "pt_alice_0001" as PatientRef
const bob = "pt_bob_00002" as PatientRef
const carol = "cl_carol_001" as ClinicianRef
const dave = "cl_dave_0002" as ClinicianRef

const patientAlice: Principal = { _tag: "Patient", ref: alice }
const clinicianCarol: Principal = { _tag: "Clinician", ref: carol }
const service: Principal = { _tag: "Service", clientId: "svc_backend_01", scopes: ["events:publish", "relationships:write"] }
const admin: Principal = { _tag: "Admin", ref: "ad_root_0001" as SubjectRef, scopes: ["sessions:revoke"] }

const ALLOW: Decision = { _tag: "Allow" }
const DENY: Decision = { _tag: "Deny" }

describe("canSubscribe", () => {
  const rows: ReadonlyArray<readonly [string, Principal, Channel.Channel, Decision]> = [
    ["a patient, its own channel", patientAlice, Channel.patient(alice), ALLOW],
    ["a patient, another patient's channel", patientAlice, Channel.patient(bob), DENY],
    ["a patient, a clinician channel", patientAlice, Channel.clinician(carol), DENY],
    ["a patient, the clinician channel with its own ref", patientAlice, Channel.clinician(alice as string as ClinicianRef), DENY],
    ["a clinician, its own channel", clinicianCarol, Channel.clinician(carol), ALLOW],
    ["a clinician, another clinician's channel", clinicianCarol, Channel.clinician(dave), DENY],
    [
      "a clinician, a patient channel",
      clinicianCarol,
      Channel.patient(alice),
      { _tag: "IfCareRelationship", clinician: carol, patient: alice }
    ],
    [
      "a clinician, the patient channel with its own ref",
      clinicianCarol,
      Channel.patient(carol as string as PatientRef),
      { _tag: "IfCareRelationship", clinician: carol, patient: carol as string as PatientRef }
    ],
    ["a service, a patient channel", service, Channel.patient(alice), DENY],
    ["a service, a clinician channel", service, Channel.clinician(carol), DENY],
    ["an admin, a patient channel", admin, Channel.patient(alice), DENY],
    ["an admin, a clinician channel", admin, Channel.clinician(carol), DENY],
    [
      "an admin whose ref equals the channel's",
      { _tag: "Admin", ref: alice as string as SubjectRef, scopes: ["sessions:revoke"] },
      Channel.patient(alice),
      DENY
    ]
  ]

  for (const [name, principal, channel, decision] of rows) {
    it(`decides ${decision._tag} for ${name}`, () => {
      expect(canSubscribe(principal, channel)).toEqual(decision)
    })
  }

  it("never allows a service or an admin, whatever the channel or scopes", () => {
    const ref = fc.stringMatching(/^[A-Za-z0-9_-]{8,64}$/)
    const scopes = fc.array(fc.constantFrom("events:publish", "relationships:write", "sessions:revoke", "*", "admin"))
    const principal = fc.oneof(
      fc.record({ _tag: fc.constant("Service" as const), clientId: ref, scopes }),
      fc.record({ _tag: fc.constant("Admin" as const), ref: ref.map((r) => r as SubjectRef), scopes })
    )
    const channel = fc.tuple(fc.boolean(), ref).map(([p, r]) =>
      p ? Channel.patient(r as PatientRef) : Channel.clinician(r as ClinicianRef)
    )
    fc.assert(fc.property(principal, channel, (who, what) => {
      expect(canSubscribe(who, what)).toEqual(DENY)
    }))
  })

  it("allows a person exactly its own channel of its own kind", () => {
    const ref = fc.stringMatching(/^[A-Za-z0-9_-]{8,64}$/)
    fc.assert(fc.property(ref, ref, fc.boolean(), (mine, theirs, samePerson) => {
      const target = samePerson ? mine : theirs
      const patient: Principal = { _tag: "Patient", ref: mine as PatientRef }
      const clinician: Principal = { _tag: "Clinician", ref: mine as ClinicianRef }
      expect(canSubscribe(patient, Channel.patient(target as PatientRef))._tag).toBe(target === mine ? "Allow" : "Deny")
      expect(canSubscribe(patient, Channel.clinician(target as ClinicianRef))._tag).toBe("Deny")
      expect(canSubscribe(clinician, Channel.clinician(target as ClinicianRef))._tag).toBe(target === mine ? "Allow" : "Deny")
      expect(canSubscribe(clinician, Channel.patient(target as PatientRef))).toEqual({
        _tag: "IfCareRelationship",
        clinician: mine,
        patient: target
      })
    }))
  })
})
