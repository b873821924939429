// The audit writer and its sinks: appending never waits on the sink; a failing sink fails the
// node closed (no new tickets or sessions) until it recovers, and loses nothing meanwhile;
// shutdown flushes and seals; files rotate by size and the chain runs on across files and
// restarts; a crash's torn line is cut and the restart says it followed an unsealed end.
import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Deferred, Effect, Exit, Fiber, Layer, Queue, Scope } from "effect"
import { randomBytes } from "node:crypto"
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { decodeJwt } from "jose"
import { afterAll } from "vitest"
import { closeFor } from "../../src/domain/Close.ts"
import { ClosedNormally } from "../../src/domain/Errors.ts"
import type { PatientRef } from "../../src/domain/Ref.ts"
import * as FileSink from "../../src/interpreters/audit/FileSink.ts"
import { verifier } from "../../src/interpreters/audit/Verify.ts"
import * as Writer from "../../src/interpreters/audit/Writer.ts"
import { MemoryAuditRecords } from "../../src/interpreters/memory/AuditLog.ts"
import * as Session from "../../src/programs/Session.ts"
import * as Tickets from "../../src/programs/Tickets.ts"
import type { AccessGrant } from "../../src/services/AccessTokens.ts"
import { AuditLog } from "../../src/services/AuditLog.ts"
import * as Settings from "../../src/services/Settings.ts"
import { memoryLayer } from "../support/layers.ts"

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

const alice: AccessGrant = { principal: { _tag: "Patient", ref: "pt_alice_0001" as PatientRef }, expiresAt: 3_600, issuedAt: 0 }

/** A session on a socket that sends nothing: enough to see whether it is admitted. */
const sessionWith = (ticket: string) =>
  Effect.gen(function*() {
    const inbox = yield* Queue.unbounded<string, ClosedNormally | Session.Interruption>()
    const transport: Session.Transport = {
      origin: "https://app.example",
      peer: "192.0.2.10",
      ticket,
      receive: Queue.take(inbox),
      end: (reason) => Queue.failCauseUnsafe(inbox, Cause.fail(reason)),
      outbox: { offer: () => true }
    }
    return { run: Effect.scoped(Session.run(transport)), close: Queue.fail(inbox, new ClosedNormally()) }
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
      yield* audit.append({ event: "ticket.issued", jti: `jti_${i}`, subject: "pt_alice_0001", result: "ok" })
      // Let the writer take a batch now and then, as it would under a steady trickle.
      if (i % 20 === 19) yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1)))
    }
    yield* Scope.close(scope, Exit.void)
  })

describe("the audit writer", () => {
  it.effect("never makes an append wait for the sink: tickets are issued while a write hangs", () =>
    Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      let writes = 0
      const slow: Writer.Sink = {
        name: "slow",
        head: Effect.succeed(undefined),
        write: () => Effect.andThen(Effect.sync(() => void writes++), Deferred.await(release)),
        close: Effect.void
      }
      const writer = yield* Writer.make(slow, { key, node: "node-1" })
      // The writer fiber takes the first batch and hangs in the sink.
      yield* Effect.yieldNow
      for (let i = 0; i < 1_000; i++) yield* writer.audit.append({ event: "ws.opened", result: "ok" })
      expect(writes).toBe(1)
      expect(yield* writer.audit.ready).toBe(true)
      yield* Deferred.succeed(release, undefined)
    }).pipe(Effect.scoped))

  it.effect("fails closed while the sink fails (503 for tickets, 4503 for sessions) and loses nothing", () =>
    Effect.gen(function*() {
      const records = yield* MemoryAuditRecords
      const before = yield* Tickets.issue(alice)
      records.failWrites(true)
      // Still ready until a write fails: this ticket's record is the one the sink refuses.
      const during = yield* Tickets.issue(alice)
      expect(yield* records.flush).toBe(false)
      expect(yield* (yield* AuditLog).ready).toBe(false)

      const refused = yield* Effect.flip(Tickets.issue(alice))
      expect(refused).toMatchObject({ _tag: "Unavailable", service: "audit-log" })
      const session = yield* sessionWith(before.ticket)
      const ended = yield* Effect.flip(session.run)
      expect(ended).toMatchObject({ _tag: "Unavailable", service: "audit-log" })
      expect(closeFor(ended).code).toBe(4503)

      records.failWrites(false)
      expect(yield* records.flush).toBe(true)
      expect(yield* (yield* AuditLog).ready).toBe(true)
      // The ticket refused for the audit's sake was never burned: it opens a session now.
      const admitted = yield* sessionWith(before.ticket)
      const fiber = yield* Effect.forkChild(admitted.run)
      yield* Effect.yieldNow
      yield* admitted.close
      const exit = yield* Fiber.await(fiber)
      expect(exit._tag === "Failure" && closeFor(Cause.squash(exit.cause) as never).code).toBe(1000)

      const all = yield* records.all
      expect(all.map((r) => r.seq)).toEqual(all.map((_, i) => i + 1))
      const events = all.map((r) => r.event)
      expect(events.slice(0, 3)).toEqual(["audit.opened", "ticket.issued", "ticket.issued"])
      expect(all.filter((r) => r.event === "ticket.issued").map((r) => r.jti)).toContain(decodeJwt(during.ticket).jti)
      // The refused session's close, written while the sink failed, came through after it recovered.
      expect(all.filter((r) => r.event === "ws.closed").map((r) => r.close)).toEqual([4503, 1000])
      expect(events).toContain("ws.opened")
    }).pipe(Effect.provide(memoryLayer())))

  it.effect("flushes what is buffered at shutdown and seals the trail", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      yield* runFileSink(dir, 500)
      const verdict = verifyDirectory(dir)
      expect(verdict).toEqual({ ok: true, records: 502, chains: 1, sealed: true, from: 1, unclean: [] })
    }))
})

describe("the file sink", () => {
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
      yield* audit.append({ event: "ticket.issued", jti: "jti_1", result: "ok" })
      yield* Effect.sleep("50 millis")
      expect(yield* audit.ready).toBe(false)
      yield* audit.append({ event: "ticket.issued", jti: "jti_2", result: "ok" })

      rmSync(first)
      // The writer retries on its own (100 ms, doubling): no flush from outside.
      for (let i = 0; i < 100 && !(yield* audit.ready); i++) yield* Effect.sleep("50 millis")
      expect(yield* audit.ready).toBe(true)
      yield* Scope.close(scope, Exit.void)
      const verdict = verifyDirectory(dir)
      expect(verdict).toEqual({ ok: true, records: 4, chains: 1, sealed: true, from: 1, unclean: [] })
      const jtis = readFileSync(first, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l).jti)
      expect(jtis).toEqual([undefined, "jti_1", "jti_2", undefined])
    }), { timeout: 20_000 })
})
