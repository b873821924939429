// Every service contract run against the Redis interpreters on one throwaway redis-server,
// flushed before each test; each test connects a fresh layer (one node).
import { beforeEach, describe } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { Redis as IORedis } from "ioredis"
import * as Redis from "../../src/interpreters/redis/Redis.ts"
import * as Settings from "../../src/services/Settings.ts"
import { testDataKeys, testKeys } from "../support/data-key.ts"
import { hasRedisServer, skipReason, useRedis } from "../support/redis.ts"
import * as CareRelationshipsContract from "./CareRelationships.contract.ts"
import * as EventBusContract from "./EventBus.contract.ts"
import * as HealthContract from "./Health.contract.ts"
import * as RateLimiterContract from "./RateLimiter.contract.ts"
import * as SessionsContract from "./Sessions.contract.ts"
import * as StorageQuotaContract from "./StorageQuota.contract.ts"
import * as TicketStoreContract from "./TicketStore.contract.ts"

describe.skipIf(!hasRedisServer)(`contracts on Redis${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  const server = useRedis()
  beforeEach(async () => {
    await server.admin.flushall()
  })

  const layer = () =>
    Redis.layer({ _tag: "Single", url: Redacted.make(server.redis.url) }, testDataKeys).pipe(
      Layer.provideMerge(Settings.layer({ maxSessionsPerSubject: 2 }))
    )

  /** The store's faults, done with plain commands, as a restart or an older snapshot would. */
  const faults = Layer.effect(
    EventBusContract.BusFaults,
    Effect.map(
      Effect.acquireRelease(Effect.sync(() => new IORedis(server.redis.adminUrl)), (admin) => Effect.sync(() => admin.disconnect())),
      (admin) =>
        EventBusContract.BusFaults.of({
          lose: (channel) =>
            Effect.promise(async () => {
              const keys = testKeys.channel(channel)
              const idempotency = await admin.keys(`tdg:{${keys.tag}}:idem:*`)
              await admin.del(keys.epoch, keys.seq, keys.history, ...idempotency)
            }),
          rollback: (channel, seq) =>
            Effect.promise(async () => {
              // History entries are "<seq>|<epoch>|<ms>|<sealed>", newest first; an older snapshot has none past `seq`.
              const keys = testKeys.channel(channel)
              const kept = (await admin.lrange(keys.history, 0, -1)).filter((m) => Number(m.split("|")[0]) <= seq)
              const multi = admin.multi().set(keys.seq, seq).del(keys.history)
              if (kept.length > 0) multi.rpush(keys.history, ...kept)
              await multi.exec()
            })
        })
    )
  )

  TicketStoreContract.suite("redis", layer)
  EventBusContract.suite("redis", () => faults.pipe(Layer.provideMerge(layer())))
  CareRelationshipsContract.suite("redis", layer)
  SessionsContract.suite("redis", layer)
  RateLimiterContract.suite("redis", layer)
  HealthContract.suite("redis", layer)
  StorageQuotaContract.suite("redis", () =>
    Redis.layer({ _tag: "Single", url: Redacted.make(server.redis.url) }, testDataKeys).pipe(
      Layer.provideMerge(Settings.layer({ storage: StorageQuotaContract.QUOTA }))
    ))
})
