// Audit records in a Redis stream per node (`tdg:audit:{<node>}`), for central collection
// across nodes: each node keeps its own chain, continued across restarts from the stream's
// last entry. A batch is one MULTI/EXEC of XADDs, so it lands whole or not at all; after an
// unanswered EXEC the stream's tail tells whether the batch is already in.
import { Effect, Layer } from "effect"
import type { Redis } from "ioredis"
import { AuditLog } from "../../services/AuditLog.ts"
import { Settings } from "../../services/Settings.ts"
import * as Client from "../redis/Client.ts"
import { Keys } from "../redis/Keys.ts"
import * as Writer from "./Writer.ts"

/** The field of each stream entry that holds the record's JSON line. */
export const FIELD = "r"

/** The record line of one stream entry's field list ("" when it has none). */
export const lineOf = (fields: ReadonlyArray<string>): string => fields[fields.indexOf(FIELD) + 1] ?? ""

const lastEntry = async (redis: Redis, key: string) => {
  const entries = await redis.xrevrange(key, "+", "-", "COUNT", 1)
  const fields = entries[0]?.[1]
  return fields === undefined ? undefined : Writer.headOf(lineOf(fields))
}

export const sink = (redis: Redis, node: string): Writer.Sink => {
  const key = Keys.audit(node)
  // Set when a write's outcome is unknown (timeout, dropped connection).
  let uncertain = false
  return {
    name: "redis",
    head: Effect.tryPromise({ try: () => lastEntry(redis, key), catch: () => new Writer.SinkFailed() }),
    write: (lines) =>
      Effect.tryPromise({
        try: async () => {
          if (uncertain) {
            const last = await lastEntry(redis, key)
            const batchEnd = Writer.headOf(lines[lines.length - 1]!)
            uncertain = false
            if (last !== undefined && batchEnd !== undefined && last.seq === batchEnd.seq && last.mac === batchEnd.mac) return
          }
          const multi = redis.multi()
          for (const line of lines) multi.xadd(key, "*", FIELD, line)
          uncertain = true
          const replies = await multi.exec()
          if (replies === null || replies.some(([error]) => error !== null)) throw new Error("audit batch refused")
          uncertain = false
        },
        catch: () => new Writer.SinkFailed()
      }),
    close: Effect.void
  }
}

/** Its own connection: a burst of audit writes never queues ahead of the event bus's commands. */
export const layer = (options: { readonly target: Client.RedisTarget; readonly key: Uint8Array }) =>
  Layer.effect(
    AuditLog,
    Effect.gen(function*() {
      const settings = yield* Settings
      const redis = yield* Effect.acquireRelease(Client.connect(options.target), Client.release)
      const writer = yield* Writer.make(sink(redis, settings.nodeId), {
        key: options.key,
        node: settings.nodeId,
        batchIntervalMs: Writer.BATCH_INTERVAL_MS
      })
      return writer.audit
    })
  )
