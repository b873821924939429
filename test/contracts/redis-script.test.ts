// Lua scripts as typed values (interpreters/redis/Script.ts) on a real redis-server: one used
// for the first time while an auto-pipeline is already open gets its own answer (a script
// registered with defineCommand at that moment left the pipeline's answers out of step and
// ended the process, ioredis #1931), and one Redis no longer has cached (a restart, SCRIPT
// FLUSH) runs again from its body.
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Script from "../../src/interpreters/redis/Script.ts"
import { hasRedisServer, skipReason, startRedis, type TestRedis } from "../support/redis.ts"

const ECHO = Script.make<[key: string], [value: string], [string, string]>(`
redis.call('SET', KEYS[1], ARGV[1])
return {KEYS[1], redis.call('GET', KEYS[1])}
`)

describe.skipIf(!hasRedisServer)(`Lua scripts${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  let redis: TestRedis
  /** As the gateway's user, which runs the scripts; `admin` flushes Redis' script cache. */
  let client: Redis
  let admin: Redis
  beforeAll(async () => {
    redis = await startRedis()
    client = new Redis(redis.url, { enableAutoPipelining: true, lazyConnect: true })
    await client.connect()
    admin = new Redis(redis.adminUrl)
  })
  afterAll(async () => {
    client?.disconnect()
    admin?.disconnect()
    await redis?.stop()
  })

  it("answers each caller with its own result when first run inside an open auto-pipeline", async () => {
    // The GETs open the tick's auto-pipeline; the scripts join it, first use included.
    const answers = await Promise.all([
      client.get("tdg:script:before"),
      ECHO.run(client, ["tdg:script:a"], ["1"]),
      client.get("tdg:script:other"),
      ECHO.run(client, ["tdg:script:b"], ["2"]),
      client.set("tdg:script:after", "3")
    ])
    // (A script Redis had not cached yet runs a round trip later, from its body: callers get
    // their answers, but not ordered against the pipeline's other commands. None relies on that.)
    expect(answers).toEqual([null, ["tdg:script:a", "1"], null, ["tdg:script:b", "2"], "OK"])
  })

  it("runs from its body when Redis has forgotten it", async () => {
    await admin.call("SCRIPT", "FLUSH")
    expect(await admin.call("SCRIPT", "EXISTS", ECHO.sha)).toEqual([0])
    expect(await ECHO.run(client, ["tdg:script:c"], ["4"])).toEqual(["tdg:script:c", "4"])
    expect(await admin.call("SCRIPT", "EXISTS", ECHO.sha)).toEqual([1])
  })
})
