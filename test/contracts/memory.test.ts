// Every service contract run against the memory interpreters, each test on a fresh layer.
import { Layer } from "effect"
import * as Memory from "../../src/interpreters/memory/Memory.ts"
import * as Settings from "../../src/services/Settings.ts"
import * as CareRelationshipsContract from "./CareRelationships.contract.ts"
import * as EventBusContract from "./EventBus.contract.ts"
import * as HealthContract from "./Health.contract.ts"
import * as RateLimiterContract from "./RateLimiter.contract.ts"
import * as SessionsContract from "./Sessions.contract.ts"
import * as TicketStoreContract from "./TicketStore.contract.ts"

const layer = () => Memory.layer().pipe(Layer.provideMerge(Settings.layer({ maxSessionsPerSubject: 2 })))

TicketStoreContract.suite("memory", layer)
EventBusContract.suite("memory", layer)
CareRelationshipsContract.suite("memory", layer)
SessionsContract.suite("memory", layer)
RateLimiterContract.suite("memory", layer)
HealthContract.suite("memory", layer)
