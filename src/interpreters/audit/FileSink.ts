// Append-only JSON-lines audit file: one chained, pseudonymized record per line, written
// through a buffered stream so appending never waits on the disk; the stream is flushed
// and closed when the layer's scope closes (shutdown).
import { Clock, Effect, Layer } from "effect"
import { createWriteStream, mkdirSync } from "node:fs"
import { join } from "node:path"
import { AuditLog } from "../../services/AuditLog.ts"
import { Settings } from "../../services/Settings.ts"
import { makeChain } from "./Chain.ts"

export const layer = (options: { readonly directory: string; readonly key: Uint8Array }) =>
  Layer.effect(
    AuditLog,
    Effect.gen(function*() {
      const settings = yield* Settings
      const chain = makeChain(options.key, settings.nodeId)
      mkdirSync(options.directory, { recursive: true, mode: 0o700 })
      const stamp = new Date(yield* Clock.currentTimeMillis).toISOString().replaceAll(":", "-")
      const file = join(options.directory, `audit-${settings.nodeId}-${stamp}.jsonl`)
      const stream = yield* Effect.acquireRelease(
        Effect.sync(() => createWriteStream(file, { flags: "a", mode: 0o600 })),
        // The seal goes last: `tidings audit verify` reports a log without one as possibly cut.
        (stream) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Effect.callback<void>((resume) => {
              stream.end(`${JSON.stringify(chain({ event: "audit.closed" }, now))}\n`, () => resume(Effect.void))
            }))
      )
      // A write error must not crash the node; failing closed on a broken sink is issue 5's.
      stream.on("error", () => undefined)
      return AuditLog.of({
        append: (entry) =>
          Effect.map(Clock.currentTimeMillis, (now) => {
            stream.write(`${JSON.stringify(chain(entry, now))}\n`)
          })
      })
    })
  )
