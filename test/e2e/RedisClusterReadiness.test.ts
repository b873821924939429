// Readiness on a Redis Cluster asks every master, not one at random: with one shard not
// answering, every /readyz is 503 (a random ping made it flap between 200 and 503, and
// TidingsRedisDown with it), and it is 200 again once the shard answers.
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Gateway, startGateway } from "../support/gateway.ts"
import { hasRedisServer, skipReason } from "../support/redis.ts"
import { startCluster, type TestCluster } from "../support/redis-cluster.ts"
import { until } from "../support/wait.ts"

describe.skipIf(!hasRedisServer)(`readiness on a Redis Cluster${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  let cluster: TestCluster
  let gateway: Gateway

  beforeAll(async () => {
    cluster = await startCluster()
    gateway = await startGateway({ ...cluster.env })
  }, 60_000)
  afterAll(async () => {
    await gateway?.close()
    await cluster?.stop()
  })

  const ready = async () => (await gateway.http("GET", "/readyz")).status

  it("is 503 on every check while one master does not answer, and 200 once it does", async () => {
    await until(async () => (await ready()) === 200, 10_000, "ready")
    const shard = new Redis({ ...cluster.nodes[2]!, ...cluster.loginAs("admin"), lazyConnect: true })
    await shard.connect()
    try {
      // The third master stops answering clients for 8 s (a hung or partitioned shard).
      const paused = Date.now()
      await shard.call("CLIENT", "PAUSE", "8000", "ALL")
      const answers: Array<number> = []
      while (Date.now() - paused < 5_000) answers.push(await ready())
      expect(answers.length).toBeGreaterThanOrEqual(3)
      expect(answers.every((status) => status === 503), JSON.stringify(answers)).toBe(true)
    } finally {
      shard.disconnect()
    }
    await until(async () => (await ready()) === 200, 15_000, "ready again")
  }, 40_000)
})
