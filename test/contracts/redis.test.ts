// Every service contract run against the Redis interpreters on one throwaway redis-server,
// flushed before each test; each test connects a fresh layer (one node).
import { beforeEach, describe } from "@effect/vitest"
import { Layer, Redacted } from "effect"
import * as Redis from "../../src/interpreters/redis/Redis.ts"
import * as Settings from "../../src/services/Settings.ts"
import { hasRedisServer, skipReason, useRedis } from "../support/redis.ts"
import * as CareRelationshipsContract from "./CareRelationships.contract.ts"
import * as EventBusContract from "./EventBus.contract.ts"
import * as HealthContract from "./Health.contract.ts"
import * as RateLimiterContract from "./RateLimiter.contract.ts"
import * as SessionsContract from "./Sessions.contract.ts"
import * as TicketStoreContract from "./TicketStore.contract.ts"

describe.skipIf(!hasRedisServer)(`contracts on Redis${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  const server = useRedis()
  beforeEach(async () => {
    await server.admin.flushall()
  })

  const layer = () =>
    Redis.layer({ _tag: "Single", url: Redacted.make(server.redis.url) }).pipe(
      Layer.provideMerge(Settings.layer({ maxSessionsPerSubject: 2 }))
    )

  TicketStoreContract.suite("redis", layer)
  EventBusContract.suite("redis", layer)
  CareRelationshipsContract.suite("redis", layer)
  SessionsContract.suite("redis", layer)
  RateLimiterContract.suite("redis", layer)
  HealthContract.suite("redis", layer)
})
