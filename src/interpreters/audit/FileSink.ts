// Append-only JSON-lines audit files, one chained record per line. Each file is named after
// the seq of its first record (`audit-<node>-<seq>.jsonl`), so names sort in chain order; a
// file past the size limit is closed and the chain goes on in the next one, and a restart
// goes on from the last record of the newest file. Durability: each batch is one append
// followed by fdatasync, so a record is on disk before the next batch is taken.
import { Effect, Layer } from "effect"
import { mkdirSync, readdirSync } from "node:fs"
import { type FileHandle, open } from "node:fs/promises"
import { join } from "node:path"
import { AuditLog } from "../../services/AuditLog.ts"
import { Settings } from "../../services/Settings.ts"
import * as Writer from "./Writer.ts"

export interface FileSinkOptions {
  readonly directory: string
  readonly key: Uint8Array
  /** A file reaching this size is closed after the batch; the next batch starts a new one. */
  readonly maxFileBytes: number
}

const SEQ_DIGITS = 12

export const fileName = (node: string, firstSeq: number) => `audit-${node}-${String(firstSeq).padStart(SEQ_DIGITS, "0")}.jsonl`

/** This node's files in chain order. */
export const filesOf = (directory: string, node: string): Array<string> => {
  const pattern = new RegExp(`^audit-${node.replace(/[^A-Za-z0-9_-]/g, "\\$&")}-\\d{${SEQ_DIGITS}}\\.jsonl$`)
  return readdirSync(directory).filter((name) => pattern.test(name)).sort()
}

/** How much of the newest file is read to find its last record; a record is far smaller. */
const TAIL_BYTES = 64 * 1024

/** The file's last TAIL_BYTES (the last records), and where they start. */
export const readTail = async (handle: FileHandle): Promise<{ readonly start: number; readonly text: string }> => {
  const { size } = await handle.stat()
  const start = Math.max(0, size - TAIL_BYTES)
  const buffer = Buffer.alloc(size - start)
  await handle.read(buffer, 0, buffer.length, start)
  return { start, text: buffer.toString("utf8") }
}

/**
 * The last record of the newest file. A crash can leave a torn last line (no newline): it was
 * never a whole record, so it is cut off here, or completed with its newline if it is whole.
 */
const lastRecord = async (path: string) => {
  const handle = await open(path, "r+")
  try {
    const { start, text } = await readTail(handle)
    const end = text.lastIndexOf("\n")
    const torn = text.slice(end + 1)
    if (torn.length > 0) {
      const whole = Writer.headOf(torn)
      if (whole !== undefined) {
        await handle.appendFile("\n")
        return whole
      }
      await handle.truncate(start + Buffer.byteLength(text.slice(0, end + 1)))
      await handle.datasync()
    }
    const lines = text.slice(0, end).split("\n")
    return lines.length > 0 ? Writer.headOf(lines[lines.length - 1]!) : undefined
  } finally {
    await handle.close()
  }
}

export const sink = (options: FileSinkOptions, node: string): Writer.Sink => {
  mkdirSync(options.directory, { recursive: true, mode: 0o700 })
  let current: { handle: FileHandle; size: number } | undefined
  // Seq of the next record to write: names the next file.
  let nextSeq = 1

  const closeCurrent = async () => {
    const file = current
    current = undefined
    if (file !== undefined) await file.handle.close().catch(() => undefined)
  }

  return {
    name: "file",
    head: Effect.tryPromise({
      try: async () => {
        const files = filesOf(options.directory, node)
        const newest = files.at(-1)
        const head = newest === undefined ? undefined : await lastRecord(join(options.directory, newest))
        nextSeq = (head?.seq ?? 0) + 1
        return head
      },
      catch: () => new Writer.SinkFailed()
    }),
    write: (lines) =>
      Effect.tryPromise({
        try: async () => {
          const data = Buffer.from(`${lines.join("\n")}\n`)
          if (current === undefined) {
            // "a": append only, never truncate; 0600: the trail is for the operator alone.
            const handle = await open(join(options.directory, fileName(node, nextSeq)), "a", 0o600)
            current = { handle, size: (await handle.stat()).size }
          }
          const file = current
          try {
            // One write call as a rule (appendFile would go through writeFile's loop of awaits).
            for (let at = 0; at < data.length;) at += (await file.handle.write(data, at, data.length - at)).bytesWritten
            await file.handle.datasync()
          } catch (error) {
            // Nothing of a failed batch may stay behind: cut back to where it began, and start
            // a fresh file on the retry.
            await file.handle.truncate(file.size).catch(() => undefined)
            await closeCurrent()
            throw error
          }
          file.size += data.length
          nextSeq += lines.length
          if (file.size >= options.maxFileBytes) await closeCurrent()
        },
        catch: () => new Writer.SinkFailed()
      }),
    close: Effect.promise(closeCurrent)
  }
}

export const layer = (options: FileSinkOptions) =>
  Layer.effect(
    AuditLog,
    Effect.gen(function*() {
      const settings = yield* Settings
      const writer = yield* Writer.make(sink(options, settings.nodeId), {
        key: options.key,
        node: settings.nodeId,
        batchIntervalMs: Writer.BATCH_INTERVAL_MS
      })
      return writer.audit
    })
  )
