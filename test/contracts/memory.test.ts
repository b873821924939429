// Every service contract run against the memory interpreters, each test on a fresh layer.
import { Effect, Layer } from "effect"
import { MemoryBus } from "../../src/interpreters/memory/EventBus.ts"
import * as Memory from "../../src/interpreters/memory/Memory.ts"
import * as Settings from "../../src/services/Settings.ts"
import * as CareRelationshipsContract from "./CareRelationships.contract.ts"
import * as EventBusContract from "./EventBus.contract.ts"
import * as HealthContract from "./Health.contract.ts"
import * as RateLimiterContract from "./RateLimiter.contract.ts"
import * as SessionsContract from "./Sessions.contract.ts"
import * as StorageQuotaContract from "./StorageQuota.contract.ts"
import * as TicketStoreContract from "./TicketStore.contract.ts"

const layer = () => Memory.layer().pipe(Layer.provideMerge(Settings.layer({ maxSessionsPerSubject: 2 })))

/** The store's faults, done to the memory bus's own state. */
const faults = Layer.effect(
  EventBusContract.BusFaults,
  Effect.map(MemoryBus, (bus) =>
    EventBusContract.BusFaults.of({
      lose: (channel) => Effect.sync(() => bus.lose(channel)),
      rollback: (channel, seq) => Effect.sync(() => bus.rollback(channel, seq))
    }))
)

TicketStoreContract.suite("memory", layer)
EventBusContract.suite("memory", () => faults.pipe(Layer.provideMerge(layer())))
CareRelationshipsContract.suite("memory", layer)
SessionsContract.suite("memory", layer)
RateLimiterContract.suite("memory", layer)
HealthContract.suite("memory", layer)
StorageQuotaContract.suite("memory", () =>
  Memory.layer().pipe(Layer.provideMerge(Settings.layer({ storage: StorageQuotaContract.QUOTA })))
)
