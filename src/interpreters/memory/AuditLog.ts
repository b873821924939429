// In-memory audit sink: the same writer, chain and pseudonyms as the file and Redis sinks,
// with the records kept in a bounded array. Tests read them through `MemoryAuditRecords`
// and can make the sink fail and recover, as a full disk or a lost network would.
import { Context, Effect, Layer } from "effect"
import { randomBytes } from "node:crypto"
import { AuditLog } from "../../services/AuditLog.ts"
import { Settings } from "../../services/Settings.ts"
import type { AuditRecord } from "../audit/Chain.ts"
import * as Writer from "../audit/Writer.ts"

const KEEP = 100_000

export class MemoryAuditRecords extends Context.Service<MemoryAuditRecords, {
  /** Every record the sink holds, after one attempt to write what is buffered. */
  readonly all: Effect.Effect<ReadonlyArray<AuditRecord>>
  /** One attempt to write what is buffered; true when the sink took it. */
  readonly flush: Effect.Effect<boolean>
  /** While true the sink refuses every write: waiting commits fail, and the node fails closed. */
  readonly failWrites: (failing: boolean) => void
}>()("tidings/MemoryAuditRecords") {}

/** Provides the AuditLog and, for tests, MemoryAuditRecords. */
/** `maxBuffered`: the writer's bound, small in tests that drive a drop. */
export const layer = (key: Uint8Array = randomBytes(32), options: { readonly maxBuffered?: number } = {}) =>
  Layer.effectContext(Effect.gen(function*() {
    const settings = yield* Settings
    const records: Array<AuditRecord> = []
    let failing = false
    const sink: Writer.Sink = {
      name: "memory",
      head: Effect.succeed(undefined),
      write: (lines) =>
        Effect.suspend(() => {
          if (failing) return Effect.fail(new Writer.SinkFailed())
          for (const line of lines) records.push(JSON.parse(line) as AuditRecord)
          if (records.length > KEEP) records.splice(0, records.length - KEEP)
          return Effect.void
        }),
      close: Effect.void
    }
    const writer = yield* Writer.make(sink, {
      key,
      node: settings.nodeId,
      ...(options.maxBuffered === undefined ? {} : { maxBuffered: options.maxBuffered })
    })
    return Context.make(AuditLog, writer.audit).pipe(Context.add(MemoryAuditRecords, {
      all: Effect.as(writer.flush, records),
      flush: writer.flush,
      failWrites: (on) => {
        failing = on
      }
    }))
  }))
