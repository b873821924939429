// In-memory audit sink: the same chained, pseudonymized records as the file sink, kept
// in a bounded array that tests read through `MemoryAuditRecords`.
import { Clock, Context, Effect, Layer } from "effect"
import { randomBytes } from "node:crypto"
import { AuditLog } from "../../services/AuditLog.ts"
import { Settings } from "../../services/Settings.ts"
import { type AuditRecord, makeChain } from "../audit/Chain.ts"

const KEEP = 100_000

export class MemoryAuditRecords extends Context.Service<MemoryAuditRecords, {
  readonly all: () => ReadonlyArray<AuditRecord>
}>()("tidings/MemoryAuditRecords") {}

/** Provides the AuditLog and, for tests, MemoryAuditRecords. */
export const layer = (key: Uint8Array = randomBytes(32)) =>
  Layer.effectContext(Effect.gen(function*() {
    const settings = yield* Settings
    const chain = makeChain(key, settings.nodeId)
    const records: Array<AuditRecord> = []
    const audit = AuditLog.of({
      append: (entry) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          records.push(chain(entry, now))
          if (records.length > KEEP) records.splice(0, records.length - KEEP)
        })
    })
    return Context.make(AuditLog, audit).pipe(Context.add(MemoryAuditRecords, { all: () => records }))
  }))
