// The audit trail. The writer pseudonymizes refs, chains records and writes them in batches.
// An audited action is answered only after `commit` (its record's batch is durable); `append`
// is for records nobody waits on. While the sink fails, `ready` is false and the programs
// refuse every audited action (fail closed).
import { Context, type Effect, Metric } from "effect"
import type { AuditEntry } from "../domain/Audit.ts"
import type { Unavailable } from "../domain/Errors.ts"

export class AuditLog extends Context.Service<AuditLog, {
  /**
   * Records an entry without waiting: for what nobody is answered about (closes, denials,
   * rate limits, refused upgrades). Never fails; past the buffer bound the record is dropped
   * and counted.
   */
  readonly append: (entry: AuditEntry) => Effect.Effect<void>
  /**
   * Records an entry and resolves once the batch holding it is in the sink. Batches are
   * written in chain order, so every entry appended before it is durable too. Fails with
   * `Unavailable` while the sink fails or the buffer is full; the record, if it was held, stays
   * queued and is written when the sink recovers (the action may already have happened).
   */
  readonly commit: (entry: AuditEntry) => Effect.Effect<void, Unavailable>
  /** False while the sink refuses writes (and after shutdown); records are then held and retried. */
  readonly ready: Effect.Effect<boolean>
}>()("tidings/AuditLog") {}

/**
 * The series every audit writer keeps, defined here once: the writer updates them, and the
 * metrics module makes them exist at 0 from start (docs/alerts.yml reads them).
 */
export const AuditMetrics = {
  sinkUp: Metric.gauge("tidings_audit_sink_up", {
    description: "1 while the audit sink takes writes; 0 while it fails (the node then refuses audited actions)"
  }),
  buffered: Metric.gauge("tidings_audit_buffered", {
    description: "Audit records appended but not yet in the sink"
  }),
  written: Metric.counter("tidings_audit_records_total", {
    description: "Audit records, written to the sink or dropped (buffer full while the sink failed, or unwritten at shutdown)",
    incremental: true,
    attributes: { result: "written" }
  }),
  dropped: Metric.counter("tidings_audit_records_total", {
    description: "Audit records, written to the sink or dropped (buffer full while the sink failed, or unwritten at shutdown)",
    incremental: true,
    attributes: { result: "dropped" }
  })
} as const
