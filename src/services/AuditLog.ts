// The audit trail. Appending never waits on the sink and never fails the caller: the sink
// buffers, pseudonymizes refs, chains records, and reports its health for readiness.
import { Context, type Effect } from "effect"
import type { AuditEntry } from "../domain/Audit.ts"

export class AuditLog extends Context.Service<AuditLog, {
  readonly append: (entry: AuditEntry) => Effect.Effect<void>
}>()("tidings/AuditLog") {}
