// The Redis stream audit sink, against a real redis-server: each node keeps its own chain in
// its own stream, continued across restarts; a commit is answered once its batch is in the
// stream; while Redis is gone the node is not ready, commits fail and records are kept, and
// once Redis is back they land once each, in order, verifiable with `tidings audit verify --redis`.
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { main } from "../../src/cli.ts"
import { Unavailable } from "../../src/domain/Errors.ts"
import * as RedisSink from "../../src/interpreters/audit/RedisSink.ts"
import { Keys } from "../../src/interpreters/redis/Keys.ts"
import { AuditLog } from "../../src/services/AuditLog.ts"
import * as Settings from "../../src/services/Settings.ts"
import { until } from "../support/wait.ts"
import { canControlRedis, controlSkipReason, hasRedisServer, skipReason, startRedis, type TestRedis } from "../support/redis.ts"

const key = randomBytes(32)
const dir = mkdtempSync(join(tmpdir(), "tidings-audit-redis-"))
const keyFile = join(dir, "audit.key")
writeFileSync(keyFile, key)

/** The sink of one node, running until `close` (a shutdown: flush, seal). */
const open = async (url: string, node: string) => {
  const scope = Effect.runSync(Scope.make())
  const layer = RedisSink.layer({ target: { _tag: "Single", url: Redacted.make(url) }, key }).pipe(
    Layer.provide(Settings.layer({ nodeId: node }))
  )
  const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
  const audit = Context.get(context, AuditLog)
  return {
    append: (jti: string) => Effect.runPromise(audit.append({ event: "ticket.issued", jti, subject: "pt_alice_0001", result: "ok" })),
    commit: (jti: string) =>
      Effect.runPromise(Effect.exit(audit.commit({ event: "ticket.issued", jti, subject: "pt_alice_0001", result: "ok" }))),
    ready: () => Effect.runPromise(audit.ready),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

describe.skipIf(!canControlRedis)(`the Redis audit sink${canControlRedis ? "" : ` (skipped: ${hasRedisServer ? controlSkipReason : skipReason})`}`, () => {
  let redis: TestRedis
  let admin: Redis
  beforeAll(async () => {
    redis = await startRedis({ persistent: true })
    admin = new Redis(redis.adminUrl, { lazyConnect: true })
    await admin.connect()
  })
  afterAll(async () => {
    admin?.disconnect()
    await redis?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  const verifyAt = (node: string) => main(["audit", "verify", "--key", keyFile, "--redis", redis.archivistUrl, "--node", node])

  it("keeps one chain per node, continued across a restart, and verify reads it from the stream", async () => {
    const a = await open(redis.url, "node-a")
    const b = await open(redis.url, "node-b")
    for (let i = 0; i < 50; i++) {
      await a.append(`jti_a_${i}`)
      await b.append(`jti_b_${i}`)
    }
    await a.close()
    await b.close()
    const again = await open(redis.url, "node-a")
    await again.append("jti_a_after")
    await again.close()

    expect(await admin.xlen(Keys.audit("node-a"))).toBe(52 + 3)
    expect(await admin.xlen(Keys.audit("node-b"))).toBe(52)
    const restart = (await admin.xrange(Keys.audit("node-a"), "-", "+")).map(([, f]) => JSON.parse(f[1]!))[52]
    expect(restart).toMatchObject({ event: "audit.opened", cause: "resumed", seq: 53 })
    expect(await verifyAt("node-a")).toBe(0)
    expect(await verifyAt("node-b")).toBe(0)

    // A deleted entry is found, as in a file.
    const [id] = (await admin.xrange(Keys.audit("node-b"), "-", "+"))[10]!
    expect(await admin.xdel(Keys.audit("node-b"), id)).toBe(1)
    expect(await verifyAt("node-b")).toBe(1)
  })

  it("is not ready while Redis is gone, and writes what it held, once each, when Redis is back", async () => {
    const node = await open(redis.url, "node-c")
    await node.append("jti_c_before")
    await until(async () => (await admin.xlen(Keys.audit("node-c"))) === 2, 2_000, "first records in the stream")
    admin.disconnect()

    await redis.kill()
    for (let i = 0; i < 20; i++) await node.append(`jti_c_during_${i}`)
    await until(async () => !(await node.ready()), 5_000, "not ready")

    await redis.restart()
    await until(() => node.ready(), 10_000, "ready again")
    await node.close()
    admin = new Redis(redis.adminUrl, { lazyConnect: true })
    await admin.connect()
    const jtis = (await admin.xrange(Keys.audit("node-c"), "-", "+")).map(([, f]) => JSON.parse(f[1]!).jti)
    expect(jtis).toEqual([undefined, "jti_c_before", ...Array.from({ length: 20 }, (_, i) => `jti_c_during_${i}`), undefined])
    expect(await verifyAt("node-c")).toBe(0)
  }, 30_000)

  it("answers a commit once its batch is in the stream, fails it while Redis is gone, and writes its record once Redis is back", async () => {
    const node = await open(redis.url, "node-d")
    const jtis = async () => (await admin.xrange(Keys.audit("node-d"), "-", "+")).map(([, f]) => JSON.parse(f[1]!).jti)
    expect(await node.commit("jti_d_1")).toEqual(Exit.void)
    // Answered means in the stream already: no waiting here.
    expect(await jtis()).toEqual([undefined, "jti_d_1"])
    admin.disconnect()

    await redis.kill()
    const failed = await node.commit("jti_d_2")
    expect(failed).toEqual(Exit.fail(new Unavailable({ service: "audit-log" })))
    expect(await node.ready()).toBe(false)

    await redis.restart()
    await until(() => node.ready(), 10_000, "ready again")
    await node.close()
    admin = new Redis(redis.adminUrl, { lazyConnect: true })
    await admin.connect()
    expect(await jtis()).toEqual([undefined, "jti_d_1", "jti_d_2", undefined])
    expect(await verifyAt("node-d")).toBe(0)
  }, 30_000)
})
