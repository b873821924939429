// Claims the README and docs/OPERATIONS.md make that no other test pinned: the rate-limit
// defaults in the README's table, the per-service publish limit answering 429 with
// Retry-After, the audit directory and file modes, the 24 h revocation window on Redis, and
// the audit-key rotation procedure (old files verify with the old key, new ones with the new).
import { randomBytes } from "node:crypto"
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { Redis } from "ioredis"
import { Result } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { main } from "../../src/cli.ts"
import * as Config from "../../src/Config.ts"
import { subjectFor } from "../../src/domain/Principal.ts"
import { testKeys } from "../support/data-key.ts"
import { freePort } from "../support/net.ts"
import { type Gateway, startGateway } from "../support/gateway.ts"
import { bounded, EXIT_TIMEOUT_MS, listening, run, useProcesses } from "../support/process.ts"
import { hasRedisServer, skipReason, startRedis, type TestRedis } from "../support/redis.ts"

useProcesses()

const README = readFileSync(resolve(import.meta.dirname, "../../README.md"), "utf8")

describe("the README's rate-limit table", () => {
  it("gives the defaults the configuration uses, in both modes", () => {
    const rows = [...README.matchAll(/^\| `(TIDINGS_RATE_[A-Z_]+)` \| `(\d+)` \| `(\d+)` \|/gm)]
    const table = Object.fromEntries(rows.map((row) => [row[1]!, [Number(row[2]), Number(row[3])]]))
    const parsed = Config.parse({})
    if (Result.isFailure(parsed)) throw new Error(parsed.failure.setting)
    const rates = parsed.success.settings.rates
    const defaults = {
      TIDINGS_RATE_MESSAGES_PER_S: rates.messages,
      TIDINGS_RATE_SUBSCRIBES_PER_MIN: rates.subscribes,
      TIDINGS_RATE_TICKETS_PER_MIN: rates.tickets,
      TIDINGS_RATE_TICKETS_PER_IP_PER_MIN: rates.ticketsPerIp,
      TIDINGS_RATE_CONNECTS_PER_MIN: rates.connectsPerSubject,
      TIDINGS_RATE_CONNECTS_PER_IP_PER_MIN: rates.connectsPerIp,
      TIDINGS_RATE_PUBLISHES_PER_S: rates.publishes
    }
    expect(Object.keys(table).sort()).toEqual(Object.keys(defaults).sort())
    for (const [name, rule] of Object.entries(defaults)) {
      // The name says the window: _PER_S is a second, _PER_MIN a minute.
      expect(rule.windowMs, name).toBe(name.endsWith("_PER_S") ? 1_000 : 60_000)
      expect(table[name], name).toEqual([rule.limit, rule.limit])
    }
  })
})

describe("the per-service publish limit", () => {
  let gateway: Gateway
  beforeAll(async () => {
    gateway = await startGateway({ TIDINGS_RATE_PUBLISHES_PER_S: "3" })
  })
  afterAll(async () => {
    await gateway?.close()
  })

  it("answers 429 with Retry-After once a service is over it, and not another service", async () => {
    const event = { channel: "patient:pt_limit_00001", kind: "result.available", ref: "res_limit_0001" }
    const answers = []
    for (let i = 0; i < 4; i++) answers.push(await gateway.publish("svc_limit_00001", event))
    expect(answers.map((a) => a.status)).toEqual([202, 202, 202, 429])
    expect(answers[3]!.json()).toEqual({ error: "rate_limited" })
    expect(answers[3]!.headers["retry-after"]).toBe("1")
    expect((await gateway.publish("svc_limit_00002", event)).status).toBe(202)
  })
})

describe.skipIf(!hasRedisServer)(`a revocation on Redis${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  let redis: TestRedis
  let gateway: Gateway
  beforeAll(async () => {
    redis = await startRedis()
    gateway = await startGateway({ TIDINGS_REDIS_URL: redis.url })
  })
  afterAll(async () => {
    await gateway?.close()
    await redis?.stop()
  })

  it("is remembered for 24 h, under a pseudonymous key", async () => {
    const admin = await gateway.token("admin", "ad_window_0001")
    const reply = await gateway.http("POST", "/v1/admin/revocations", {
      body: JSON.stringify({ subject: "pt_window_00001", role: "patient" }),
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" }
    })
    expect(reply.status).toBe(202)
    const client = new Redis(redis.adminUrl)
    try {
      const key = testKeys.subject(subjectFor("patient", "pt_window_00001")).revoked
      expect(key).not.toContain("pt_window_00001")
      const ttl = await client.ttl(key)
      expect(ttl).toBeGreaterThan(86_400 - 10)
      expect(ttl).toBeLessThanOrEqual(86_400)
    } finally {
      client.disconnect()
    }
  })
})

describe("the audit trail on disk", () => {
  it("keeps its directory 0700 and its files 0600", async () => {
    const [port, metrics] = [await freePort(), await freePort()]
    const node = run((dir) => ({
      TIDINGS_LISTEN: `127.0.0.1:${port}`,
      TIDINGS_METRICS_LISTEN: `127.0.0.1:${metrics}`,
      TIDINGS_AUDIT_SINK: `file:${join(dir, "audit")}`
    }))
    await listening(node)
    node.child.kill("SIGTERM")
    await bounded(node.exited, EXIT_TIMEOUT_MS, "exit")
    const dir = join(node.dir, "audit")
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    const files = readdirSync(dir)
    expect(files.length).toBeGreaterThan(0)
    for (const file of files) expect(statSync(join(dir, file)).mode & 0o777, file).toBe(0o600)
  })

  it("rotates its key at a restart: old files verify with the old key, new ones with the new key and --partial", async () => {
    const [port, metrics] = [await freePort(), await freePort()]
    const start = async (dir: string | undefined, keyFile: (dir: string) => string) => {
      const node = run((d) => ({
        TIDINGS_LISTEN: `127.0.0.1:${port}`,
        TIDINGS_METRICS_LISTEN: `127.0.0.1:${metrics}`,
        TIDINGS_AUDIT_SINK: `file:${join(d, "audit")}`,
        TIDINGS_AUDIT_KEY_FILE: keyFile(d)
      }), dir)
      await listening(node)
      node.child.kill("SIGTERM")
      expect((await bounded(node.exited, EXIT_TIMEOUT_MS, "exit")).code).toBe(0)
      return node.dir
    }
    const dir = await start(undefined, (d) => {
      writeFileSync(join(d, "old.key"), randomBytes(32))
      writeFileSync(join(d, "new.key"), randomBytes(32))
      return join(d, "old.key")
    })
    const before = readdirSync(join(dir, "audit")).filter((f) => f.endsWith(".jsonl")).sort()
    await start(dir, (d) => join(d, "new.key"))
    const after = readdirSync(join(dir, "audit")).filter((f) => f.endsWith(".jsonl") && !before.includes(f)).sort()
    expect(before.length).toBeGreaterThan(0)
    expect(after.length).toBeGreaterThan(0)
    const path = (files: Array<string>) => files.map((f) => join(dir, "audit", f))
    expect(await main(["audit", "verify", "--key", join(dir, "old.key"), ...path(before)])).toBe(0)
    expect(await main(["audit", "verify", "--partial", "--key", join(dir, "new.key"), ...path(after)])).toBe(0)
    // Neither key verifies the whole trail: the chain's macs change with the key.
    expect(await main(["audit", "verify", "--key", join(dir, "new.key"), ...path([...before, ...after])])).not.toBe(0)
    expect(await main(["audit", "verify", "--key", join(dir, "old.key"), ...path([...before, ...after])])).not.toBe(0)
  })
})
