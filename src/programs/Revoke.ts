// Taking access away: an admin revokes a subject (every session closes 4409, older tickets
// are refused), and a service grants or ends a care relationship (an ended one removes the
// clinician's live subscription to that patient on every node). Each is refused while the
// audit trail cannot take records, and answered only once its record is durable.
import { Clock, Effect, Layer } from "effect"
import * as Channel from "../domain/Channel.ts"
import { Forbidden } from "../domain/Errors.ts"
import { hasScope, type Principal, Scope, subjectFor, subjectOf, USER_ROLES, type UserRole } from "../domain/Principal.ts"
import type { ClinicianRef, PatientRef, SubjectRef } from "../domain/Ref.ts"
import { auditReady } from "./Admit.ts"
import * as Metrics from "./Metrics.ts"
import { AuditLog } from "../services/AuditLog.ts"
import { CareRelationships } from "../services/CareRelationships.ts"
import { Sessions } from "../services/Sessions.ts"

/** Revokes the ref in one role, or in every role when none is named. */
export const revokeSubject = Effect.fnUntraced(function*(principal: Principal, ref: SubjectRef, role?: UserRole) {
  if (principal._tag !== "Admin" || !hasScope(principal, Scope.revoke)) return yield* new Forbidden()
  yield* auditReady
  const sessions = yield* Sessions
  const audit = yield* AuditLog
  const now = yield* Clock.currentTimeMillis
  const roles = role === undefined ? USER_ROLES : [role]
  for (const [i, each] of roles.entries()) {
    const subject = subjectFor(each, ref)
    yield* sessions.revoke(subject, now)
    const record = { event: "session.revoked", subject, result: "ok" } as const
    // Batches are written in chain order: committing the last record makes the earlier ones durable too.
    yield* i === roles.length - 1 ? audit.commit(record) : audit.append(record)
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
  yield* auditReady
  yield* (yield* CareRelationships).grant(request.clinician, request.patient, untilMs, yield* Clock.currentTimeMillis)
  yield* (yield* AuditLog).commit({
    event: "relationship.granted",
    subject: subjectOf({ _tag: "Clinician", ref: request.clinician }),
    channel: Channel.patient(request.patient),
    result: "ok"
  })
})

export const endCare = Effect.fnUntraced(function*(principal: Principal, request: CareRequest) {
  yield* requireRelationshipsScope(principal)
  yield* auditReady
  yield* (yield* CareRelationships).end(request.clinician, request.patient)
  yield* (yield* AuditLog).commit({
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
