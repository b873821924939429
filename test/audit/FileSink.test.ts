// The file audit sink with the writer: shutdown flushes and seals; files rotate by size and
// the chain runs on across files and restarts; a crash's torn line is cut and the restart says
// it followed an unsealed end; a disk that refuses writes fails the node closed until it takes
// them again, and nothing is lost meanwhile.
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { randomBytes } from "node:crypto"
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"
import * as FileSink from "../../src/interpreters/audit/FileSink.ts"
import { verifier } from "../../src/interpreters/audit/Verify.ts"
import { AuditLog } from "../../src/services/AuditLog.ts"
import * as Settings from "../../src/services/Settings.ts"
import { until } from "../support/wait.ts"

const key = randomBytes(32)
const dirs: Array<string> = []
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "tidings-audit-"))
  dirs.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

/** Lines of a node's files in chain order, and the verifier's verdict on them. */
const verifyDirectory = (dir: string, node = "node-1") => {
  const files = FileSink.filesOf(dir, node)
  const check = verifier(key)
  for (const file of files) {
    const lines = readFileSync(join(dir, file), "utf8").split("\n")
    for (const [i, line] of lines.entries()) {
      const bad = check.line(file, i + 1, line)
      if (bad !== undefined) return bad
    }
  }
  return check.end(false)
}

const fileSinkLayer = (dir: string, maxFileBytes = 64 * 1024 * 1024) =>
  FileSink.layer({ directory: dir, key, maxFileBytes }).pipe(Layer.provide(Settings.layer({})))

/** Builds the file sink in its own scope, appends, and closes it as a shutdown would. */
const runFileSink = (dir: string, entries: number, maxFileBytes?: number) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(fileSinkLayer(dir, maxFileBytes), scope)
    const audit = Context.get(context, AuditLog)
    for (let i = 0; i < entries; i++) {
      const entry = { event: "ticket.issued", jti: `jti_${i}`, subject: "pt_alice_0001", result: "ok" } as const
      // Every 20th waits for its batch, so the files get many batches, as under a steady trickle.
      yield* i % 20 === 19 ? audit.commit(entry) : audit.append(entry)
    }
    yield* Scope.close(scope, Exit.void)
  })

describe("the file sink", () => {
  it.effect("flushes what is buffered at shutdown and seals the trail", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      yield* runFileSink(dir, 500)
      const verdict = verifyDirectory(dir)
      expect(verdict).toEqual({ ok: true, records: 502, chains: 1, sealed: true, from: 1, unclean: [] })
    }))

  it.effect("rotates by size, names files by their first seq, and the chain runs on across files", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      yield* runFileSink(dir, 300, 4096)
      const files = FileSink.filesOf(dir, "node-1")
      expect(files.length).toBeGreaterThan(3)
      expect(files[0]).toBe("audit-node-1-000000000001.jsonl")
      for (const file of files) {
        const first = JSON.parse(readFileSync(join(dir, file), "utf8").split("\n")[0]!)
        expect(file).toBe(FileSink.fileName("node-1", first.seq))
      }
      expect(verifyDirectory(dir)).toMatchObject({ ok: true, records: 302, chains: 1, sealed: true })
      // Deleting a whole middle file breaks the chain at its first seq.
      const gone = files[1]!
      const firstGone = JSON.parse(readFileSync(join(dir, gone), "utf8").split("\n")[0]!).seq
      rmSync(join(dir, gone))
      expect(verifyDirectory(dir)).toMatchObject({ ok: false, problem: "seq", seq: firstGone })
    }))

  it.effect("continues the chain across restarts, and the restart says it followed a seal", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      yield* runFileSink(dir, 10)
      yield* runFileSink(dir, 10)
      expect(readdirSync(dir).sort()).toEqual(["audit-node-1-000000000001.jsonl", "audit-node-1-000000000013.jsonl"])
      const second = JSON.parse(readFileSync(join(dir, "audit-node-1-000000000013.jsonl"), "utf8").split("\n")[0]!)
      expect(second).toMatchObject({ event: "audit.opened", cause: "resumed", seq: 13 })
      expect(verifyDirectory(dir)).toEqual({ ok: true, records: 24, chains: 1, sealed: true, from: 1, unclean: [] })
    }))

  it.effect("after a crash, cuts the torn last line, goes on from the last whole record and marks the restart", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      yield* runFileSink(dir, 10)
      const file = join(dir, "audit-node-1-000000000001.jsonl")
      // A crash: no seal, and half a record at the end.
      const lines = readFileSync(file, "utf8").split("\n").filter((l) => l.length > 0)
      writeFileSync(file, `${lines.slice(0, -1).join("\n")}\n`)
      appendFileSync(file, lines[5]!.slice(0, 40))
      yield* runFileSink(dir, 3)
      expect(readFileSync(file, "utf8").endsWith("}\n")).toBe(true)
      expect(verifyDirectory(dir)).toEqual({ ok: true, records: 11 + 5, chains: 1, sealed: true, from: 1, unclean: [12] })
    }))

  it.live("fails closed on a disk that refuses writes, and writes everything once it takes them again", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      // The sink's first file is /dev/full: every write fails with ENOSPC, as on a full disk.
      const first = join(dir, "audit-node-1-000000000001.jsonl")
      symlinkSync("/dev/full", first)
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(fileSinkLayer(dir), scope)
      const audit = Context.get(context, AuditLog)
      const ready = () => Effect.runPromise(audit.ready)
      expect(yield* Effect.flip(audit.commit({ event: "ticket.issued", jti: "jti_1", result: "ok" })))
        .toMatchObject({ _tag: "Unavailable", service: "audit-log" })
      expect(yield* audit.ready).toBe(false)
      yield* audit.append({ event: "ticket.issued", jti: "jti_2", result: "ok" })

      rmSync(first)
      // The writer retries on its own (100 ms, doubling): no flush from outside.
      yield* Effect.promise(() => until(ready, 10_000, "the sink takes writes again"))
      yield* Scope.close(scope, Exit.void)
      const verdict = verifyDirectory(dir)
      expect(verdict).toEqual({ ok: true, records: 4, chains: 1, sealed: true, from: 1, unclean: [] })
      const jtis = readFileSync(first, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l).jti)
      expect(jtis).toEqual([undefined, "jti_1", "jti_2", undefined])
    }), { timeout: 20_000 })
})
