// Every service contract run against the Redis interpreters on one throwaway redis-server,
// flushed before each test; each test connects a fresh layer (one node).
import { afterAll, beforeAll, beforeEach, describe } from "@effect/vitest"
import { Layer, Redacted } from "effect"
import { Redis as IORedis } from "ioredis"
import * as Redis from "../../src/interpreters/redis/Redis.ts"
import * as Settings from "../../src/services/Settings.ts"
import { hasRedisServer, skipReason, startRedis, type TestRedis } from "../support/redis.ts"
import * as CareRelationshipsContract from "./CareRelationships.contract.ts"
import * as EventBusContract from "./EventBus.contract.ts"
import * as HealthContract from "./Health.contract.ts"
import * as RateLimiterContract from "./RateLimiter.contract.ts"
import * as SessionsContract from "./Sessions.contract.ts"
import * as TicketStoreContract from "./TicketStore.contract.ts"

describe.skipIf(!hasRedisServer)(`contracts on Redis${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  let redis: TestRedis
  let admin: IORedis

  beforeAll(async () => {
    redis = await startRedis()
    admin = new IORedis(redis.url, { lazyConnect: true })
    await admin.connect()
  })
  afterAll(async () => {
    await admin?.quit()
    await redis?.stop()
  })
  beforeEach(async () => {
    await admin.flushall()
  })

  const layer = () =>
    Redis.layer({ _tag: "Single", url: Redacted.make(redis.url) }).pipe(
      Layer.provideMerge(Settings.layer({ maxSessionsPerSubject: 2 }))
    )

  TicketStoreContract.suite("redis", layer)
  EventBusContract.suite("redis", layer)
  CareRelationshipsContract.suite("redis", layer)
  SessionsContract.suite("redis", layer)
  RateLimiterContract.suite("redis", layer)
  HealthContract.suite("redis", layer)
})
