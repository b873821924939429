// Every service on its in-memory interpreter: the dev default and the test bed for programs.
// One node is then the whole gateway. Needs Settings (caps, node id).
import { Layer } from "effect"
import * as AuditLog from "./AuditLog.ts"
import * as CareRelationships from "./CareRelationships.ts"
import * as EventBus from "./EventBus.ts"
import * as Health from "./Health.ts"
import * as RateLimiter from "./RateLimiter.ts"
import * as Sessions from "./Sessions.ts"
import * as StorageQuota from "./StorageQuota.ts"
import * as TicketStore from "./TicketStore.ts"

export const layer = (auditKey?: Uint8Array) =>
  Layer.mergeAll(
    EventBus.layer,
    CareRelationships.layer,
    // The registry opens sessions with the same ticket store and buckets the others use.
    Sessions.layer.pipe(Layer.provideMerge(Layer.merge(TicketStore.layer, RateLimiter.layer))),
    StorageQuota.layer,
    AuditLog.layer(auditKey),
    Health.layer
  )
