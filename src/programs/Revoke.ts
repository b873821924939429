// Taking access away: an admin revokes a subject (every session closes 4409, older tickets
// are refused). Refused while the audit trail cannot take records, and answered only once its
// record is durable. (Care relationships, granted and ended by services, are in Care.ts.)
import { Clock, Effect } from "effect"
import { Forbidden } from "../domain/Errors.ts"
import { hasScope, type Principal, Scope, subjectFor, USER_ROLES, type UserRole } from "../domain/Principal.ts"
import type { SubjectRef } from "../domain/Ref.ts"
import { auditReady } from "./Admit.ts"
import * as Metrics from "./Metrics.ts"
import { AuditLog } from "../services/AuditLog.ts"
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
