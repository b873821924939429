// The audit trail. Appending never waits on the sink and never fails the caller: the writer
// buffers, pseudonymizes refs, chains records and writes them in the background. While the
// sink fails, `ready` is false: the programs then refuse new sessions and tickets (fail closed).
import { Context, type Effect } from "effect"
import type { AuditEntry } from "../domain/Audit.ts"

export class AuditLog extends Context.Service<AuditLog, {
  readonly append: (entry: AuditEntry) => Effect.Effect<void>
  /** False while the sink refuses writes; records are then held and retried, none dropped. */
  readonly ready: Effect.Effect<boolean>
}>()("tidings/AuditLog") {}
