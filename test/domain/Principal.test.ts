// Specifies how verified access-token claims become a principal (contract §5): anything that
// does not map cleanly is no principal at all, and scopes grant only what they name exactly.
import { describe, expect, it } from "@effect/vitest"
import { fromClaims, hasScope, type Principal, roleOf, Scope, subjectFor, subjectOf, userOf } from "../../src/domain/Principal.ts"
import type { ClinicianRef, PatientRef, SubjectRef } from "../../src/domain/Ref.ts"

describe("fromClaims", () => {
  describe("maps each role", () => {
    it("patient → Patient(ref)", () => {
      expect(fromClaims({ role: "patient", ref: "pt_alice_0001", sub: "someone" })).toEqual({
        _tag: "Patient",
        ref: "pt_alice_0001"
      })
    })

    it("clinician → Clinician(ref)", () => {
      expect(fromClaims({ role: "clinician", ref: "cl_carol_001" })).toEqual({ _tag: "Clinician", ref: "cl_carol_001" })
    })

    it("admin → Admin(ref, scopes)", () => {
      expect(fromClaims({ role: "admin", ref: "ad_root_0001", scope: "sessions:revoke" })).toEqual({
        _tag: "Admin",
        ref: "ad_root_0001",
        scopes: ["sessions:revoke"]
      })
    })

    it("service → Service(clientId, scopes), its id from ref, else client_id, else sub", () => {
      const scope = "events:publish relationships:write"
      expect(fromClaims({ role: "service", ref: "svc_ref_0001", client_id: "svc_cid_0001", sub: "svc_sub_0001", scope }))
        .toEqual({ _tag: "Service", clientId: "svc_ref_0001", scopes: ["events:publish", "relationships:write"] })
      expect(fromClaims({ role: "service", client_id: "svc_cid_0001", sub: "svc_sub_0001", scope })).toMatchObject({
        _tag: "Service",
        clientId: "svc_cid_0001"
      })
      expect(fromClaims({ role: "service", sub: "svc_sub_0001", scope })).toMatchObject({
        _tag: "Service",
        clientId: "svc_sub_0001"
      })
      expect(fromClaims({ role: "service", ref: "bad ref", client_id: "svc_cid_0001" })).toMatchObject({
        clientId: "svc_cid_0001"
      })
    })

    it("a patient or clinician carries no scopes, even when the token has some", () => {
      expect(fromClaims({ role: "patient", ref: "pt_alice_0001", scope: "sessions:revoke events:publish" })).toEqual({
        _tag: "Patient",
        ref: "pt_alice_0001"
      })
    })
  })

  describe("refuses (undefined)", () => {
    it.each([
      ["patient"],
      ["clinician"],
      ["admin"]
    ])("role %s without a ref", (role) => {
      expect(fromClaims({ role, sub: "pt_alice_0001" })).toBeUndefined()
    })

    const badRefs: ReadonlyArray<unknown> = [
      "short", // 5
      "abcdefg", // 7
      "x".repeat(65),
      "pt alice 01",
      "pt_alice_0001\n",
      "pt_аlice_0001", // Cyrillic а
      "../../etc/passwd",
      "pt_alice_*",
      "",
      12345678,
      null,
      ["pt_alice_0001"],
      { ref: "pt_alice_0001" }
    ]
    for (const role of ["patient", "clinician", "admin", "service"]) {
      it(`role ${role} with a bad ref`, () => {
        for (const ref of badRefs) expect(fromClaims({ role, ref })).toBeUndefined()
      })
    }

    it("a service with no usable id", () => {
      expect(fromClaims({ role: "service", scope: "events:publish" })).toBeUndefined()
      expect(fromClaims({ role: "service", client_id: "x", sub: 42, scope: "events:publish" })).toBeUndefined()
    })

    it("an unknown, missing or differently typed role", () => {
      for (const role of ["nurse", "Patient", "PATIENT", "patient ", "root", "", undefined, null, 1, ["patient"], { patient: true }]) {
        expect(fromClaims({ role, ref: "pt_alice_0001", scope: "sessions:revoke" })).toBeUndefined()
      }
      expect(fromClaims({ ref: "pt_alice_0001" })).toBeUndefined()
      expect(fromClaims({})).toBeUndefined()
    })
  })

  describe("parses scopes", () => {
    const scopesOf = (scope: unknown) => {
      const principal = fromClaims({ role: "service", ref: "svc_backend_01", scope })
      if (principal?._tag !== "Service") throw new Error("expected a service")
      return principal.scopes
    }

    it("splits a space-separated string and drops empty parts", () => {
      expect(scopesOf("events:publish relationships:write")).toEqual(["events:publish", "relationships:write"])
      expect(scopesOf("  events:publish   relationships:write ")).toEqual(["events:publish", "relationships:write"])
      expect(scopesOf("events:publish")).toEqual(["events:publish"])
    })

    it("grants no scope when the claim is missing, empty or not a string", () => {
      expect(scopesOf(undefined)).toEqual([])
      expect(scopesOf("")).toEqual([])
      expect(scopesOf("   ")).toEqual([])
      expect(scopesOf(["events:publish"])).toEqual([])
      expect(scopesOf(1)).toEqual([])
    })

    it("for an admin too", () => {
      expect(fromClaims({ role: "admin", ref: "ad_root_0001", scope: "sessions:revoke other" })).toMatchObject({
        scopes: ["sessions:revoke", "other"]
      })
      expect(fromClaims({ role: "admin", ref: "ad_root_0001" })).toMatchObject({ scopes: [] })
    })
  })
})

describe("hasScope", () => {
  const service: Principal = { _tag: "Service", clientId: "svc_backend_01", scopes: ["events:publish"] }
  const admin: Principal = { _tag: "Admin", ref: "ad_root_0001" as SubjectRef, scopes: ["sessions:revoke"] }

  it("answers true for a scope a service or an admin holds", () => {
    expect(hasScope(service, Scope.publish)).toBe(true)
    expect(hasScope(admin, Scope.revoke)).toBe(true)
  })

  it("answers false for a scope it does not hold", () => {
    expect(hasScope(service, Scope.relationships)).toBe(false)
    expect(hasScope(service, Scope.revoke)).toBe(false)
    expect(hasScope(admin, Scope.publish)).toBe(false)
  })

  it("matches whole scopes only", () => {
    const near: Principal = { _tag: "Service", clientId: "svc_backend_01", scopes: ["events:publishx", "events", "EVENTS:PUBLISH"] }
    expect(hasScope(near, Scope.publish)).toBe(false)
    expect(hasScope(service, "events")).toBe(false)
    expect(hasScope(service, "")).toBe(false)
  })

  it("answers false for patients and clinicians", () => {
    for (const scope of Object.values(Scope)) {
      expect(hasScope({ _tag: "Patient", ref: "pt_alice_0001" as PatientRef }, scope)).toBe(false)
      expect(hasScope({ _tag: "Clinician", ref: "cl_carol_001" as ClinicianRef }, scope)).toBe(false)
    }
  })
})

describe("users", () => {
  it("subjectOf, roleOf and userOf agree", () => {
    const patient = userOf("patient", "pt_alice_0001")
    const clinician = userOf("clinician", "cl_carol_001")
    expect(patient).toEqual({ _tag: "Patient", ref: "pt_alice_0001" })
    expect(clinician).toEqual({ _tag: "Clinician", ref: "cl_carol_001" })
    expect(roleOf(patient)).toBe("patient")
    expect(roleOf(clinician)).toBe("clinician")
    expect(subjectOf(patient)).toBe("patient:pt_alice_0001")
    expect(subjectOf(clinician)).toBe("clinician:cl_carol_001")
  })

  it("makes a patient and a clinician who share a ref two subjects", () => {
    expect(subjectOf(userOf("patient", "shared_ref_01"))).not.toBe(subjectOf(userOf("clinician", "shared_ref_01")))
    expect(subjectFor("clinician", "shared_ref_01")).toBe(subjectOf(userOf("clinician", "shared_ref_01")))
  })
})
