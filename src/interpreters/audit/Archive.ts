// Moves the oldest entries of a node's audit stream (`tdg:audit:{<node>}`) into an archive file
// and only then trims them from the stream: written, fsynced, read back and verified (chain and
// macs) first, then trimmed by id up to the last archived entry and never past it, so an entry
// appended meanwhile stays. The files are those the file sink writes, so `tidings audit verify`
// reads them, and the chain runs on from the newest archive file into the stream.
import { createReadStream, mkdirSync } from "node:fs"
import { type FileHandle, link, open, unlink } from "node:fs/promises"
import { join } from "node:path"
import { createInterface } from "node:readline"
import type { Redis } from "ioredis"
import { Keys } from "../redis/Keys.ts"
import { fileName, filesOf, readTail } from "./FileSink.ts"
import { lineOf } from "./RedisSink.ts"
import { verifier } from "./Verify.ts"
import * as Writer from "./Writer.ts"

export interface ArchiveOptions {
  readonly redis: Redis
  readonly node: string
  readonly directory: string
  readonly key: Uint8Array
  /**
   * Entries left in the stream, at least 1: a node that starts continues its chain from the
   * stream's last entry, and would start a new chain from an empty stream.
   */
  readonly keep: number
  /** Runs once the range is read and written, before it is verified and trimmed (tests append here). */
  readonly afterRead?: () => Promise<void>
}

export type ArchiveResult =
  | {
    readonly ok: true
    /** Records written to `file` (none when the stream held nothing past `keep` not yet archived). */
    readonly archived: number
    readonly file: string | undefined
    readonly from: number
    readonly to: number
    /** Entries trimmed: the archived ones, and any a previous run archived but could not trim. */
    readonly trimmed: number
    readonly left: number
  }
  /** One line naming what failed, never a record's contents; nothing was trimmed. */
  | { readonly ok: false; readonly problem: string }

const PAGE = 10_000

/** The id right after `id`: `XTRIM MINID` keeps it and all later entries, and drops `id` itself. */
export const nextId = (id: string): string => {
  const [ms, seq] = id.split("-").map((part) => BigInt(part))
  return seq! === 2n ** 64n - 1n ? `${ms! + 1n}-0` : `${ms}-${seq! + 1n}`
}

/** The newest archive file of the node in `directory`, with its last record (read only). */
const newestArchive = async (directory: string, node: string) => {
  const name = filesOf(directory, node).at(-1)
  if (name === undefined) return undefined
  const path = join(directory, name)
  const handle = await open(path, "r")
  try {
    const { text } = await readTail(handle)
    const line = text.split("\n").filter((text) => text.length > 0).at(-1)
    const head = line === undefined ? undefined : Writer.headOf(line)
    return line === undefined || head === undefined ? { path, line: undefined, head: undefined } : { path, line, head }
  } finally {
    await handle.close()
  }
}

export const archive = (options: ArchiveOptions): Promise<ArchiveResult> =>
  // A failure past this point (Redis gone, a full disk) has trimmed nothing; a run that wrote
  // its file but could not trim is completed by the next run (see `overlap`).
  run(options).catch(() => ({ ok: false, problem: "Redis or the archive directory failed (run it again once both work)" }))

const run = async (options: ArchiveOptions): Promise<ArchiveResult> => {
  const { redis, node, directory } = options
  const stream = Keys.audit(node)
  if (!Number.isInteger(options.keep) || options.keep < 1) return { ok: false, problem: "keep must be a whole number of at least 1" }
  const wanted = (await redis.xlen(stream)) - options.keep
  if (wanted <= 0) return { ok: true, archived: 0, file: undefined, from: 0, to: 0, trimmed: 0, left: wanted + options.keep }
  mkdirSync(directory, { recursive: true, mode: 0o700 })
  const previous = await newestArchive(directory, node)
  if (previous !== undefined && previous.head === undefined) return { ok: false, problem: `${previous.path} does not end with a record` }

  // Written under a name `verify` ignores; "wx": a second run at the same time is refused.
  const partial = join(directory, `.archive-${node}.partial`)
  const handle = await open(partial, "wx", 0o600).catch(() => undefined)
  if (handle === undefined) return { ok: false, problem: `${partial} exists: another archive run is under way, or one was stopped (remove it)` }
  const refuse = async (problem: string): Promise<ArchiveResult> => {
    await handle.close().catch(() => undefined)
    await unlink(partial).catch(() => undefined)
    return { ok: false, problem }
  }
  try {
    return await archiveInto(options, wanted, { handle, partial, previous, refuse })
  } catch (error) {
    await refuse("")
    throw error
  }
}

interface Run {
  readonly handle: FileHandle
  readonly partial: string
  readonly previous: Awaited<ReturnType<typeof newestArchive>>
  /** Removes the partial file and answers the problem: nothing is trimmed. */
  readonly refuse: (problem: string) => Promise<ArchiveResult>
}

/** Reads the oldest `wanted` entries into the partial file, verifies it, names it, then trims. */
const archiveInto = async (options: ArchiveOptions, wanted: number, { handle, partial, previous, refuse }: Run): Promise<ArchiveResult> => {
  const { redis, node, directory } = options
  const stream = Keys.audit(node)

  let read = 0
  let written = 0
  let from = 0
  let to = 0
  let lastId = ""
  // A previous run that archived and then could not trim left its records at the stream's start:
  // they are trimmed, not archived again, once the stream shows the archive's last record (seq
  // and mac) among them. Anything else at or below that seq is refused (it may be a new chain).
  let overlap = previous?.head !== undefined && previous.head.seq > 0
  let start = "-"
  while (read < wanted) {
    const page = await redis.xrange(stream, start, "+", "COUNT", Math.min(PAGE, wanted - read))
    if (page.length === 0) break
    const lines: Array<string> = []
    for (const [id, fields] of page) {
      read += 1
      lastId = id
      const line = lineOf(fields)
      const head = Writer.headOf(line)
      if (overlap && read === 1 && (head === undefined || head.seq > previous!.head!.seq)) overlap = false
      if (overlap) {
        if (head === undefined || head.seq > previous!.head!.seq) return refuse(`the stream's entry ${id} is not in ${previous!.path}, nor after it`)
        if (head.seq === previous!.head!.seq) {
          if (head.mac !== previous!.head!.mac) return refuse(`the stream's seq ${head.seq} differs from ${previous!.path}'s`)
          overlap = false
        }
        continue
      }
      if (written === 0) from = head?.seq ?? 0
      to = head?.seq ?? 0
      written += 1
      lines.push(line)
    }
    if (lines.length > 0) await handle.appendFile(`${lines.join("\n")}\n`)
    start = `(${page.at(-1)![0]}`
  }
  if (overlap) return refuse(`the stream's first entries do not reach the last record of ${previous!.path}`)
  // Emptied meanwhile by someone else: nothing was read, so there is nothing to trim.
  if (read === 0) return refuse("the stream held fewer entries than it did a moment before; run it again")
  await options.afterRead?.()
  await handle.datasync()
  await handle.close()

  let file: string | undefined
  if (written > 0) {
    // Read back from the file: what is verified is what was written, chained to the archive before it.
    const check = verifier(options.key, { partial: true })
    const before = previous?.line === undefined ? undefined : check.line(previous.path, 0, previous.line)
    if (before !== undefined) return refuse(`the last record of ${previous!.path} does not verify`)
    let lineNumber = 0
    for await (const text of createInterface({ input: createReadStream(partial), crlfDelay: Number.POSITIVE_INFINITY })) {
      lineNumber += 1
      const bad = check.line(partial, lineNumber, text)
      if (bad !== undefined && !bad.ok) return refuse(`the stream's records do not verify: ${bad.problem} at seq ${bad.seq ?? "?"}`)
    }
    const verdict = check.end(true)
    if (!verdict.ok || lineNumber !== written) return refuse("the archive file does not hold what was read")
    file = join(directory, fileName(node, from))
    // link, not rename: an archive file already there is never replaced.
    if (!(await link(partial, file).then(() => true, () => false))) return refuse(`${file} exists already`)
  }
  await unlink(partial)
  const dir = await open(directory, "r")
  await dir.sync().finally(() => dir.close())

  const trimmed = await redis.xtrim(stream, "MINID", nextId(lastId))
  return { ok: true, archived: written, file, from, to, trimmed, left: await redis.xlen(stream) }
}
