// A service publishes an event: scope check, kind allowlist, audit readiness, rate limit and
// storage quota, then id and time, and the bus assigns `seq` atomically. The answer means accepted (not yet
// delivered) and comes only once the `event.published` record is durable.
// Idempotency is per publishing service: another service reusing an `id` publishes its own
// event and never learns which channel the first one went to. The steps before and after the
// bus are their own programs, so a batch (PublishBatch.ts) runs exactly these around one bus call.
import { Clock, Effect } from "effect"
import type { Accepted, PublishRequest } from "../domain/Event.ts"
import { Forbidden, MalformedInput } from "../domain/Errors.ts"
import { hasScope, type Principal, Scope } from "../domain/Principal.ts"
import { AuditLog } from "../services/AuditLog.ts"
import { EventBus, type PublishItem, type Published } from "../services/EventBus.ts"
import { Settings } from "../services/Settings.ts"
import { storedBytes } from "../domain/Quota.ts"
import { StorageQuota } from "../services/StorageQuota.ts"
import { admit, admitStorage, auditReady } from "./Admit.ts"
import * as Ids from "./Ids.ts"
import * as Metrics from "./Metrics.ts"

/** A principal that may publish, or Forbidden. */
export const publisher = (principal: Principal) =>
  principal._tag === "Service" && hasScope(principal, Scope.publish)
    ? Effect.succeed(principal)
    : Effect.fail(new Forbidden())

/** Everything before the bus: the kind allowlist, audit readiness, the quota and the rate; then the draft. */
export const admitted = Effect.fnUntraced(function*(clientId: string, request: PublishRequest) {
  const settings = yield* Settings
  if (!settings.eventKinds.has(request.kind)) return yield* new MalformedInput()
  yield* auditReady
  // The quota first: it is decided locally, while the rate may take a token from Redis.
  yield* admitStorage(clientId)
  yield* admit(`publish:${clientId}`, settings.rates.publishes)
  const now = yield* Clock.currentTimeMillis
  const id = request.id ?? Ids.eventId()
  return {
    draft: { id, channel: request.channel, kind: request.kind, ref: request.ref, at: new Date(now).toISOString() },
    idempotencyKey: `${clientId}/${id}`
  } satisfies PublishItem
})

/** Everything after the bus: a fresh event is charged, counted and audited before it is answered. */
export const recorded = Effect.fnUntraced(function*(clientId: string, request: PublishRequest, published: Published) {
  if (published.fresh) {
    // Seq 1: the event began its channel (its first, or the first after a quiet day).
    yield* (yield* StorageQuota).charge(clientId, storedBytes({ id: published.id, kind: request.kind, ref: request.ref }), published.seq === 1)
    // The kind passed the allowlist above: the label is bounded by configuration.
    yield* Metrics.eventPublished(request.kind)
    // A 503 here after a fresh publish: the event is out, its record is queued and retried,
    // and the service's retry with the same id is idempotent.
    yield* (yield* AuditLog).commit({
      event: "event.published",
      channel: published.channel,
      cause: request.kind,
      result: "ok"
    })
  }
  return { id: published.id, channel: published.channel, seq: published.seq } satisfies Accepted
})

export const publish = Effect.fnUntraced(function*(principal: Principal, request: PublishRequest) {
  const { clientId } = yield* publisher(principal)
  const item = yield* admitted(clientId, request)
  const published = yield* (yield* EventBus).publish(item.draft, item.idempotencyKey)
  return yield* recorded(clientId, request, published)
})
