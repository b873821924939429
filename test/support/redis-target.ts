// A throwaway Redis for a contract suite run twice: a single redis-server, or a 3-master
// cluster. Started before the suite's tests, stopped after; `target` is what the Redis
// interpreters connect to (as the gateway's ACL user), `admin` a client for the test's own
// reads and writes (as the admin user).
import { Layer, Redacted } from "effect"
import { Cluster, Redis } from "ioredis"
import { afterAll, beforeAll } from "vitest"
import * as Client from "../../src/interpreters/redis/Client.ts"
import type { RedisTarget } from "../../src/interpreters/redis/Client.ts"
import * as Control from "../../src/interpreters/redis/Control.ts"
import * as RedisSessions from "../../src/interpreters/redis/Sessions.ts"
import * as Settings from "../../src/services/Settings.ts"
import { testDataKeysLayer } from "./data-key.ts"
import { startCluster, type TestCluster } from "./redis-cluster.ts"
import { startRedis, type TestRedis } from "./redis.ts"

export type TargetKind = "single" | "cluster"

export interface UsedTarget {
  readonly target: RedisTarget
  readonly admin: Redis
}

export const useRedisTarget = (kind: TargetKind): UsedTarget => {
  const used = {} as { target: RedisTarget; admin: Redis }
  let redis: TestRedis | undefined
  let cluster: TestCluster | undefined
  beforeAll(async () => {
    if (kind === "single") {
      redis = await startRedis()
      used.target = { _tag: "Single", url: Redacted.make(redis.url) }
      used.admin = new Redis(redis.adminUrl)
    } else {
      cluster = await startCluster()
      const { username, password } = cluster.loginAs("gateway")
      used.target = { _tag: "Cluster", nodes: cluster.nodes, username, password: Redacted.make(password) }
      used.admin = new Cluster([...cluster.nodes], { redisOptions: cluster.loginAs("admin") }) as unknown as Redis
    }
  }, 30_000)
  afterAll(async () => {
    used.admin?.disconnect()
    await redis?.stop()
    await cluster?.stop()
  })
  return used
}

/** One node's Redis session registry on `target`, with its control channel and a cap of 2. */
export const sessionsNode = (target: RedisTarget, lease: Parameters<typeof RedisSessions.layerWith>[0]) =>
  RedisSessions.layerWith(lease).pipe(
    Layer.provide(Layer.merge(Control.layer, testDataKeysLayer)),
    Layer.provideMerge(Client.layer(target)),
    Layer.provideMerge(Settings.layer({ maxSessionsPerSubject: 2 }))
  )
