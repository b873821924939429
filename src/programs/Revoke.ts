// Taking access away: an admin revokes a subject (every session closes 4409, older tickets
// are refused), and a service grants or ends a care relationship (an ended one removes the
// clinician's live subscription to that patient on every node).
import { Clock, Effect, Layer } from "effect"
import * as Channel from "../domain/Channel.ts"
import { Forbidden } from "../domain/Errors.ts"
import { hasScope, type Principal, Scope, subjectFor, subjectOf, USER_ROLES, type UserRole } from "../domain/Principal.ts"
import type { ClinicianRef, PatientRef, SubjectRef } from "../domain/Ref.ts"
import * as Metrics from "./Metrics.ts"
import { AuditLog } from "../services/AuditLog.ts"
import { CareRelationships } from "../services/CareRelationships.ts"
import { Sessions } from "../services/Sessions.ts"

/** Revokes the ref in one role, or in every role when none is named. */
export const revokeSubject = Effect.fnUntraced(function*(principal: Principal, ref: SubjectRef, role?: UserRole) {
  if (principal._tag !== "Admin" || !hasScope(principal, Scope.revoke)) return yield* new Forbidden()
  const sessions = yield* Sessions
  const now = yield* Clock.currentTimeMillis
  for (const each of role === undefined ? USER_ROLES : [role]) {
    const subject = subjectFor(each, ref)
    yield* sessions.revoke(subject, now)
    yield* (yield* AuditLog).append({ event: "session.revoked", subject, result: "ok" })
  }
  yield* Metrics.revoked
})

export interface CareRequest {
  readonly clinician: ClinicianRef
  readonly patient: PatientRef
}

const requireRelationshipsScope = (principal: Principal) =>
  principal._tag === "Service" && hasScope(principal, Scope.relationships) ? Effect.void : Effect.fail(new Forbidden())

export const grantCare = Effect.fnUntraced(function*(
  principal: Principal,
  request: CareRequest,
  untilMs: number | undefined
) {
  yield* requireRelationshipsScope(principal)
  yield* (yield* CareRelationships).grant(request.clinician, request.patient, untilMs, yield* Clock.currentTimeMillis)
  yield* (yield* AuditLog).append({
    event: "relationship.granted",
    subject: subjectOf({ _tag: "Clinician", ref: request.clinician }),
    channel: Channel.patient(request.patient),
    result: "ok"
  })
})

export const endCare = Effect.fnUntraced(function*(principal: Principal, request: CareRequest) {
  yield* requireRelationshipsScope(principal)
  yield* (yield* CareRelationships).end(request.clinician, request.patient)
  yield* (yield* AuditLog).append({
    event: "relationship.ended",
    subject: subjectOf({ _tag: "Clinician", ref: request.clinician }),
    channel: Channel.patient(request.patient),
    result: "ok"
  })
})

/**
 * Per node: when any node changes a care relationship, re-check the clinician's local
 * subscriptions; when changes may have been missed, re-check every local subscription.
 */
export const CareWatcher = Layer.effectDiscard(Effect.gen(function*() {
  const sessions = yield* Sessions
  yield* (yield* CareRelationships).onChanged((change) => {
    if (change === undefined) {
      for (const session of sessions.everyLocal()) session.reauthorizeAll()
      return
    }
    const channel = Channel.patient(change.patient)
    for (const session of sessions.local(subjectOf({ _tag: "Clinician", ref: change.clinician }))) session.reauthorize(channel)
  })
}))
