// The CareRelationships contract, for every interpreter: grants with or without an end, ends,
// and every change announced to the listeners whose scope is open.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, type Layer, Scope } from "effect"
import type { ClinicianRef, PatientRef } from "../../src/domain/Ref.ts"
import { subjectFor } from "../../src/domain/Principal.ts"
import { type CareChange, CareRelationships } from "../../src/services/CareRelationships.ts"
import { clinicianRef, patientRef, until } from "./support.ts"

const NOW = 1_700_000_000_000
const TEN_YEARS = 10 * 365 * 24 * 60 * 60 * 1000

/** When the active relationship ends, or undefined: what most specs below look at. */
const untilOf = (care: CareRelationships["Service"], c: ClinicianRef, p: PatientRef, now: number) =>
  Effect.map(care.active(c, p, now), (grant) => grant?.until)

export const suite = (name: string, makeLayer: () => Layer.Layer<CareRelationships, unknown>) =>
  describe(`CareRelationships contract (${name})`, () => {
    const withCare = <A, E>(body: (care: CareRelationships["Service"]) => Effect.Effect<A, E, Scope.Scope>) =>
      Effect.scoped(Effect.flatMap(CareRelationships, body)).pipe(Effect.provide(makeLayer()))

    /** Every change heard while `scope` (or the test's scope) is open. */
    const hear = (care: CareRelationships["Service"], scope?: Scope.Scope) =>
      Effect.gen(function*() {
        const heard: Array<CareChange | "resync"> = []
        const listen = care.onChanged((change) => void heard.push(change ?? "resync"))
        yield* scope === undefined ? listen : Scope.provide(scope)(listen)
        return heard
      })

    it.live("a grant without an end is active until Infinity", () =>
      withCare((care) =>
        Effect.gen(function*() {
          const [c, p] = [clinicianRef(), patientRef()]
          yield* care.grant(c, p, undefined, NOW)
          expect(yield* untilOf(care, c, p, NOW)).toBe(Number.POSITIVE_INFINITY)
          expect(yield* untilOf(care, c, p, NOW + TEN_YEARS)).toBe(Number.POSITIVE_INFINITY)
        })
      ))

    it.live("a grant with an end is active until then, and inactive at and after it", () =>
      withCare((care) =>
        Effect.gen(function*() {
          const [c, p] = [clinicianRef(), patientRef()]
          const end = NOW + 60_000
          yield* care.grant(c, p, end, NOW)
          expect(yield* untilOf(care, c, p, NOW)).toBe(end)
          expect(yield* untilOf(care, c, p, end - 1)).toBe(end)
          expect(yield* untilOf(care, c, p, end)).toBeUndefined()
          expect(yield* untilOf(care, c, p, end + 1)).toBeUndefined()
        })
      ))

    it.live("a new grant replaces the end of the previous one", () =>
      withCare((care) =>
        Effect.gen(function*() {
          const [c, p] = [clinicianRef(), patientRef()]
          yield* care.grant(c, p, NOW + 1_000, NOW)
          yield* care.grant(c, p, undefined, NOW)
          expect(yield* untilOf(care, c, p, NOW)).toBe(Number.POSITIVE_INFINITY)
          yield* care.grant(c, p, NOW + 5_000, NOW)
          expect(yield* untilOf(care, c, p, NOW)).toBe(NOW + 5_000)
          expect(yield* untilOf(care, c, p, NOW + 5_000)).toBeUndefined()
        })
      ))

    it.live("a grant begins when it is made, and a renewal while active keeps that start", () =>
      withCare((care) =>
        Effect.gen(function*() {
          const [c, p] = [clinicianRef(), patientRef()]
          yield* care.grant(c, p, NOW + 60_000, NOW)
          expect(yield* care.active(c, p, NOW + 1)).toEqual({ since: NOW, until: NOW + 60_000 })
          yield* care.grant(c, p, undefined, NOW + 30_000)
          expect(yield* care.active(c, p, NOW + 30_001)).toEqual({ since: NOW, until: Number.POSITIVE_INFINITY })
        })
      ))

    it.live("a grant after an end, or after the previous one ran out, begins anew", () =>
      withCare((care) =>
        Effect.gen(function*() {
          const [c, p] = [clinicianRef(), patientRef()]
          yield* care.grant(c, p, undefined, NOW)
          yield* care.end(c, p)
          yield* care.grant(c, p, NOW + 10_000, NOW + 5_000)
          expect((yield* care.active(c, p, NOW + 5_001))?.since).toBe(NOW + 5_000)
          // Ran out at NOW + 10 s; granted again at NOW + 20 s.
          yield* care.grant(c, p, undefined, NOW + 20_000)
          expect((yield* care.active(c, p, NOW + 20_001))?.since).toBe(NOW + 20_000)
        })
      ))

    it.live("end makes a relationship inactive", () =>
      withCare((care) =>
        Effect.gen(function*() {
          const [c, p] = [clinicianRef(), patientRef()]
          yield* care.grant(c, p, undefined, NOW)
          yield* care.end(c, p)
          expect(yield* untilOf(care, c, p, NOW)).toBeUndefined()
        })
      ))

    it.live("ending a relationship that does not exist is not an error", () =>
      withCare((care) =>
        Effect.gen(function*() {
          const [c, p] = [clinicianRef(), patientRef()]
          yield* care.end(c, p)
          expect(yield* untilOf(care, c, p, NOW)).toBeUndefined()
        })
      ))

    it.live("a relationship binds one clinician to one patient", () =>
      withCare((care) =>
        Effect.gen(function*() {
          const [c, otherC, p, otherP] = [clinicianRef(), clinicianRef(), patientRef(), patientRef()]
          yield* care.grant(c, p, undefined, NOW)
          expect(yield* untilOf(care, c, otherP, NOW)).toBeUndefined()
          expect(yield* untilOf(care, otherC, p, NOW)).toBeUndefined()
          yield* care.end(c, otherP)
          expect(yield* untilOf(care, c, p, NOW)).toBe(Number.POSITIVE_INFINITY)
        })
      ))

    it.live("a listener hears every grant and end, in order, while its scope is open", () =>
      withCare((care) =>
        Effect.gen(function*() {
          const heard = yield* hear(care)
          const [c, p, otherC, otherP] = [clinicianRef(), patientRef(), clinicianRef(), patientRef()]
          yield* care.grant(c, p, undefined, NOW)
          yield* care.grant(c, p, NOW + 1_000, NOW)
          yield* care.end(c, p)
          yield* care.end(otherC, otherP)
          yield* until(() => heard.length >= 4, "four changes are heard")
          // Changes are told by what they are (between nodes they carry pseudonyms only).
          const told = heard.map((h) => h === "resync" ? h : h.is(c, p) ? "c-p" : h.is(otherC, otherP) ? "other" : "unknown")
          expect(told).toEqual(["c-p", "c-p", "c-p", "other"])
          const first = heard[0] as CareChange
          expect([first.is(c, otherP), first.is(otherC, p)]).toEqual([false, false])
          expect([first.touches(subjectFor("clinician", c)), first.touches(subjectFor("clinician", otherC)), first.touches(subjectFor("patient", c))])
            .toEqual([true, false, false])
        })
      ))

    it.live("every open listener hears a change, and a listener hears nothing once its scope has closed", () =>
      withCare((care) =>
        Effect.gen(function*() {
          const scope = yield* Scope.fork(yield* Scope.Scope)
          const closed = yield* hear(care, scope)
          const [first, second] = [yield* hear(care), yield* hear(care)]
          const [c, p] = [clinicianRef(), patientRef()]
          yield* care.grant(c, p, undefined, NOW)
          yield* until(() => closed.length >= 1 && first.length >= 1 && second.length >= 1, "all three hear the grant")
          yield* Scope.close(scope, Exit.void)
          yield* care.end(c, p)
          yield* until(() => first.length >= 2 && second.length >= 2, "the open listeners hear the end")
          expect(closed.map((h) => h !== "resync" && h.is(c, p))).toEqual([true])
          expect([first, second].map((heard) => heard.map((h) => h !== "resync" && h.is(c, p)))).toEqual([[true, true], [true, true]])
        })
      ))
  })
