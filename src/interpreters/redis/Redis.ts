// Every shared service on Redis over one node's three connections (commands, the event bus's
// sharded subscriber, the control channel's subscriber): what lets any number of nodes act as
// one gateway. Needs Settings (caps); names and seals what it stores with the data keys.
import { Layer } from "effect"
import * as CareRelationships from "./CareRelationships.ts"
import * as Client from "./Client.ts"
import * as Control from "./Control.ts"
import * as DataKey from "./DataKey.ts"
import * as EventBus from "./EventBus.ts"
import * as Health from "./Health.ts"
import * as RateLimiter from "./RateLimiter.ts"
import * as Sessions from "./Sessions.ts"
import * as StorageQuota from "./StorageQuota.ts"
import * as Subscriber from "./Subscriber.ts"
import * as TicketStore from "./TicketStore.ts"

export const layer = (target: Client.RedisTarget, dataKeys: Parameters<typeof DataKey.layer>[0]) =>
  Layer.mergeAll(
    TicketStore.layer,
    EventBus.layer,
    CareRelationships.layer,
    Sessions.layer,
    RateLimiter.layer,
    StorageQuota.layer,
    Health.layer
  ).pipe(
    Layer.provide(Layer.mergeAll(Subscriber.layer, Control.layer, DataKey.layer(dataKeys))),
    Layer.provideMerge(Client.layer(target))
  )
