// Care relationships, from the services that own them: a grant lets a clinician follow a
// patient (until an optional end), an end removes the clinician's live subscription to that
// patient on every node. Each is refused while the audit trail cannot take records, and
// answered only once its record is durable. `CareWatcher` is each node's ear for changes.
import { Clock, Effect, Layer } from "effect"
import * as Channel from "../domain/Channel.ts"
import { Forbidden } from "../domain/Errors.ts"
import { hasScope, type Principal, Scope, subjectOf } from "../domain/Principal.ts"
import type { ClinicianRef, PatientRef } from "../domain/Ref.ts"
import { auditReady } from "./Admit.ts"
import { AuditLog } from "../services/AuditLog.ts"
import { CareRelationships } from "../services/CareRelationships.ts"
import { Sessions } from "../services/Sessions.ts"

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
 * subscriptions (all of them: a change names its clinician and patient by pseudonyms only,
 * and a clinician follows few patients); when changes may have been missed, re-check every
 * local subscription.
 */
export const CareWatcher = Layer.effectDiscard(Effect.gen(function*() {
  const sessions = yield* Sessions
  yield* (yield* CareRelationships).onChanged((change) => {
    for (const session of sessions.everyLocal()) {
      if (change === undefined) session.reauthorizeAll()
      else if (session.subject.startsWith("clinician:") && change.touches(session.subject)) session.reauthorizeAll()
    }
  })
}))
