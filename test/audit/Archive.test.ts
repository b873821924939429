// `tidings audit archive`, against a real redis-server: the oldest entries of a node's audit
// stream move into files the file sink's format names, verified before anything is trimmed, so
// archive files and the rest of the stream verify as one chain; a tampered range trims nothing,
// and entries appended while it runs stay in the stream.
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { randomBytes } from "node:crypto"
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Redis } from "ioredis"
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest"
import { main } from "../../src/cli.ts"
import { archive } from "../../src/interpreters/audit/Archive.ts"
import { pseudonymizer } from "../../src/interpreters/audit/Chain.ts"
import { fileName } from "../../src/interpreters/audit/FileSink.ts"
import * as RedisSink from "../../src/interpreters/audit/RedisSink.ts"
import { Keys } from "../../src/interpreters/redis/Keys.ts"
import { AuditLog } from "../../src/services/AuditLog.ts"
import * as Settings from "../../src/services/Settings.ts"
import { hasRedisServer, skipReason, startRedis, type TestRedis, USERS } from "../support/redis.ts"

const key = randomBytes(32)
const dir = mkdtempSync(join(tmpdir(), "tidings-audit-archive-"))
const keyFile = join(dir, "audit.key")
writeFileSync(keyFile, key)
const SUBJECT = "pt_archive_0001"

/** One node's Redis audit sink, running until `close` (a shutdown: flush, seal). */
const open = async (url: string, node: string) => {
  const scope = Effect.runSync(Scope.make())
  const layer = RedisSink.layer({ target: { _tag: "Single", url: Redacted.make(url) }, key }).pipe(
    Layer.provide(Settings.layer({ nodeId: node }))
  )
  const audit = Context.get(await Effect.runPromise(Layer.buildWithScope(layer, scope)), AuditLog)
  return {
    /** Answered once the record is in the stream. */
    commit: (jti: string) => Effect.runPromise(audit.commit({ event: "ticket.issued", jti, subject: SUBJECT, result: "ok" })),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/** Runs the CLI, answering its exit code and what it printed. */
const cli = async (...args: Array<string>) => {
  const printed: Array<string> = []
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((text) => (printed.push(String(text)), true))
  try {
    return { code: await main(["audit", ...args]), out: printed.join("") }
  } finally {
    spy.mockRestore()
  }
}

describe.skipIf(!hasRedisServer)(`tidings audit archive${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  let redis: TestRedis
  let admin: Redis
  let out: string
  beforeAll(async () => {
    redis = await startRedis()
    admin = new Redis(redis.adminUrl)
  })
  afterEach(() => {
    rmSync(out, { recursive: true, force: true })
  })
  afterAll(async () => {
    admin?.disconnect()
    await redis?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  const archiveCli = (node: string, keep: number) =>
    cli("archive", "--key", keyFile, "--redis", redis.archivistUrl, "--node", node, "--out", out, "--keep", String(keep))
  const archived = () => readdirSync(out).filter((name) => name.endsWith(".jsonl")).sort().map((name) => join(out, name))
  const seqsIn = async (node: string) => (await admin.xrange(Keys.audit(node), "-", "+")).map(([, f]) => JSON.parse(f[1]!).seq as number)
  const seqsOf = (files: Array<string>) =>
    files.flatMap((file) => readFileSync(file, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l).seq as number))

  it("moves the oldest entries into files and keeps every record: archive and stream verify as one chain", async () => {
    out = join(dir, "one")
    const node = "node-archive-1"
    // Two runs of the node (a restart in the middle), then a third still writing.
    for (const run of [1, 2]) {
      const sink = await open(redis.url, node)
      for (let i = 0; i < 20; i++) await sink.commit(`jti_run${run}_${i}`)
      await sink.close()
    }
    const live = await open(redis.url, node)
    for (let i = 0; i < 5; i++) await live.commit(`jti_live_${i}`)
    const total = await admin.xlen(Keys.audit(node))
    expect(total).toBe(22 + 22 + 6)

    const first = await archiveCli(node, 10)
    expect(first.code).toBe(0)
    expect(first.out).toBe(`OK archived ${total - 10} records (seq 1 to ${total - 10}) in ${join(out, fileName(node, 1))}, trimmed ${total - 10} entries, 10 left in the stream\n`)
    expect(await admin.xlen(Keys.audit(node))).toBe(10)
    // The archived part ends mid-chain (--open); the stream alone now starts mid-chain (--partial).
    expect((await cli("verify", "--open", "--key", keyFile, ...archived())).code).toBe(0)
    expect((await cli("verify", "--open", "--partial", "--key", keyFile, "--redis", redis.archivistUrl, "--node", node)).code).toBe(0)
    expect((await cli("verify", "--open", "--key", keyFile, "--redis", redis.archivistUrl, "--node", node)).code).toBe(1)
    // As OPERATIONS.md has operators do it: the user in the URL, its password in a file.
    const passwordFile = join(out, "..", "archivist.password")
    writeFileSync(passwordFile, `${USERS.archivist.password}\n`)
    vi.stubEnv("TIDINGS_REDIS_PASSWORD_FILE", passwordFile)
    const userOnly = `redis://${USERS.archivist.name}@127.0.0.1:${redis.port}`
    expect((await cli("verify", "--open", "--partial", "--key", keyFile, "--redis", userOnly, "--node", node)).code).toBe(0)
    vi.unstubAllEnvs()

    for (let i = 5; i < 25; i++) await live.commit(`jti_live_${i}`)
    await live.close()
    expect((await archiveCli(node, 3)).code).toBe(0)
    expect(archived().map((file) => file.slice(out.length + 1))).toEqual([fileName(node, 1), fileName(node, total - 10 + 1)])
    // Every record, each once and in order: the files first, then what the stream still holds.
    const all = [...seqsOf(archived()), ...(await seqsIn(node))]
    expect(all).toEqual(Array.from({ length: all.length }, (_, i) => i + 1))
    expect(all.length).toBe(total + 20 + 1)
    const whole = await cli("verify", "--key", keyFile, ...archived(), "--redis", redis.archivistUrl, "--node", node)
    expect(whole).toEqual({ code: 0, out: expect.stringMatching(/^OK 71 records in 1 chain\(s\), sealed, /) })
  })

  it("trims nothing when a record of the range was tampered with, and says so in one line without its contents", async () => {
    out = join(dir, "tampered")
    const node = "node-archive-2"
    const sink = await open(redis.url, node)
    for (let i = 0; i < 20; i++) await sink.commit(`jti_tamper_${i}`)
    await sink.close()
    // The stream rewritten with the 8th record's jti edited (XADD cannot insert mid-stream).
    const entries = await admin.xrange(Keys.audit(node), "-", "+")
    await admin.del(Keys.audit(node))
    for (const [index, [, fields]] of entries.entries()) {
      const line = index === 7 ? fields[1]!.replace("jti_tamper_6", "jti_tamper_X") : fields[1]!
      await admin.xadd(Keys.audit(node), "*", RedisSink.FIELD, line)
    }

    const refused = await archiveCli(node, 1)
    expect(refused).toEqual({ code: 1, out: "BAD nothing trimmed: the stream's records do not verify: mac at seq 8\n" })
    expect(refused.out).not.toContain(pseudonymizer(key)(SUBJECT))
    expect(await admin.xlen(Keys.audit(node))).toBe(22)
    expect(readdirSync(out)).toEqual([])
  })

  it("keeps the entries appended while it runs, and trims no further than what it archived", async () => {
    out = join(dir, "concurrent")
    const node = "node-archive-3"
    const sink = await open(redis.url, node)
    for (let i = 0; i < 30; i++) await sink.commit(`jti_before_${i}`)
    const client = new Redis(redis.archivistUrl)
    try {
      const result = await archive({
        redis: client, node, directory: out, key, keep: 1,
        // Between the read and the trim: these are newer than the last archived entry.
        afterRead: async () => {
          for (let i = 0; i < 5; i++) await sink.commit(`jti_during_${i}`)
        }
      })
      expect(result).toMatchObject({ ok: true, archived: 30, from: 1, to: 30, trimmed: 30, left: 6 })
    } finally {
      client.disconnect()
    }
    await sink.close()
    const jtis = (await admin.xrange(Keys.audit(node), "-", "+")).map(([, f]) => JSON.parse(f[1]!).jti)
    expect(jtis).toEqual(["jti_before_29", ...Array.from({ length: 5 }, (_, i) => `jti_during_${i}`), undefined])
    expect((await cli("verify", "--key", keyFile, ...archived(), "--redis", redis.archivistUrl, "--node", node)).code).toBe(0)
  })

  it("completes a run that wrote its file but could not trim: those entries are trimmed, not archived twice", async () => {
    out = join(dir, "resumed")
    const node = "node-archive-4"
    const sink = await open(redis.url, node)
    for (let i = 0; i < 15; i++) await sink.commit(`jti_resume_${i}`)
    await sink.close()
    // What a run stopped after writing its file leaves: the file, and the stream untouched.
    const lines = (await admin.xrange(Keys.audit(node), "-", "+")).map(([, f]) => f[1]!)
    mkdirSync(out, { recursive: true })
    const stopped = join(dir, "stopped.jsonl")
    writeFileSync(stopped, `${lines.slice(0, 9).join("\n")}\n`)
    copyFileSync(stopped, join(out, fileName(node, 1)))

    const again = await archiveCli(node, 2)
    expect(again.code).toBe(0)
    expect(again.out).toBe(`OK archived 6 records (seq 10 to 15) in ${join(out, fileName(node, 10))}, trimmed 15 entries, 2 left in the stream\n`)
    expect([...seqsOf(archived()), ...(await seqsIn(node))]).toEqual(Array.from({ length: 17 }, (_, i) => i + 1))
    expect((await cli("verify", "--key", keyFile, ...archived(), "--redis", redis.archivistUrl, "--node", node)).code).toBe(0)
  })
})
