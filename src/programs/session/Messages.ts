// What a session does with each client message: the per-connection message bucket, strict
// decoding, then `subscribe` (rate, policy, cap, hub, replay), `unsubscribe`, `refresh` and
// `ping`. Malformed, denied and rate-limited messages are answered up to a threshold, then end it.
import { Clock, Effect, Metric, Result } from "effect"
import { print } from "../../domain/Channel.ts"
import type { Channel } from "../../domain/Channel.ts"
import { frameCodeFor } from "../../domain/Close.ts"
import { ProtocolViolation, RateLimited, RepeatedDenials, SubscriptionDenied } from "../../domain/Errors.ts"
import * as Limits from "../../domain/Limits.ts"
import * as Policy from "../../domain/Policy.ts"
import { resumeFrom } from "../../domain/Position.ts"
import type { User } from "../../domain/Principal.ts"
import * as TokenBucket from "../../domain/TokenBucket.ts"
import * as Wire from "../../domain/Wire.ts"
import * as Metrics from "../Metrics.ts"
import * as Tickets from "../Tickets.ts"
import { allowed, withinAccess } from "./Access.ts"
import type { Live } from "./Lifecycle.ts"
import { drop, expireAt, Subscription } from "./Subscription.ts"

export const handle = Effect.fnUntraced(function*(live: Live, text: string) {
  const settings = live.services.settings
  const now = yield* Clock.currentTimeMillis
  live.lastActive = now
  const taken = TokenBucket.take(live.messages!, settings.rates.messages, now)
  live.messages = taken.bucket
  if (!taken.ok) return yield* limited(live, new RateLimited({ scope: "message", retryAfterMs: taken.retryAfterMs }))
  const outbox = live.transport.outbox
  const decoded = Wire.decodeClientMessage(text)
  if (Result.isFailure(decoded)) {
    yield* Metrics.clientMessage("malformed")
    live.malformed += 1
    if (live.malformed > Limits.MALFORMED_BEFORE_CLOSE) return yield* new ProtocolViolation()
    outbox.offer(Wire.error(undefined, "bad_request"))
    return
  }
  const message = decoded.success
  yield* Metrics.clientMessage(message.type)
  switch (message.type) {
    case "subscribe":
      return yield* subscribe(live, message)
    case "unsubscribe":
      yield* drop(live, print(message.channel))
      outbox.offer(Wire.unsubscribed(message.id, message.channel))
      return
    case "refresh":
      return yield* refresh(live, message.id, message.ticket)
    case "ping":
      outbox.offer(Wire.pong(message.id))
      return
  }
})

const limited = Effect.fnUntraced(function*(live: Live, error: RateLimited, id?: string) {
  live.limited += 1
  yield* Metrics.rateLimited(error.scope)
  if (live.limited === 1) {
    yield* live.services.audit.append({ event: "rate.limited", subject: live.subject, cause: error.scope, result: "refused" })
  }
  if (live.limited > Limits.LIMITED_BEFORE_CLOSE) return yield* error
  live.transport.outbox.offer(Wire.error(id, "rate_limited"))
})

const deny = Effect.fnUntraced(function*(live: Live, id: string, channel: Channel) {
  live.denied += 1
  yield* live.services.audit.append({ event: "subscribe.denied", subject: live.subject, channel, result: "refused" })
  if (live.denied > Limits.DENIALS_BEFORE_CLOSE) return yield* new RepeatedDenials()
  live.transport.outbox.offer(Wire.error(id, frameCodeFor(new SubscriptionDenied())))
})

const subscribe = Effect.fnUntraced(function*(live: Live, message: Wire.Subscribe) {
  const { settings, limiter, hub, bus, audit } = live.services
  const outbox = live.transport.outbox
  const key = print(message.channel)
  // Care changes announced from here until `subscribed` find no answered subscription to
  // re-check: this subscribe checks again itself before it answers (below).
  let heard = live.careChanges
  const restsOnCare = Policy.canSubscribe(live.user!, message.channel)._tag === "IfCareRelationship"
  const token = Effect.result(limiter.consume(`subscribe:${live.subject}`, settings.rates.subscribes))
  const check = Effect.result(allowed(live, message.channel))
  // The token and a care relationship's lookup are independent reads: sent together, they are
  // one round trip (answered in this order). A check that needs no lookup forks nothing.
  const [admitted, access] = restsOnCare
    ? yield* Effect.all([token, check], { concurrency: "unbounded" })
    : [yield* token, yield* check]
  if (Result.isFailure(admitted)) {
    if (admitted.failure._tag === "RateLimited") return yield* limited(live, admitted.failure, message.id)
    outbox.offer(Wire.error(message.id, "unavailable"))
    return
  }
  if (Result.isFailure(access)) {
    outbox.offer(Wire.error(message.id, "unavailable"))
    return
  }
  if (access.success === undefined) return yield* deny(live, message.id, message.channel)
  const grant = access.success
  const existing = live.subscriptions.get(key)
  if (existing === undefined && live.subscriptions.size >= settings.maxSubscriptionsPerConnection) {
    outbox.offer(Wire.error(message.id, "rate_limited"))
    return
  }
  if (existing !== undefined) yield* drop(live, key)
  const subscription = new Subscription(live, message.channel)
  live.subscriptions.set(key, subscription)
  yield* Metric.modify(Metrics.subscriptions, 1)
  const joined = yield* Effect.gen(function*() {
    // Joined and its leave kept in one uninterruptible step, so no interruption in between can
    // leave the hub holding a subscriber nobody will take out.
    const joined = yield* Effect.uninterruptible(Effect.flatMap(hub.join(message.channel, subscription), (joined) => {
      // Dropped while joining (a re-check found access ended): leave at once.
      if (live.subscriptions.get(key) !== subscription) return Effect.as(joined.leave, undefined)
      subscription.leave = joined.leave
      return Effect.succeed(joined)
    }))
    if (joined === undefined) return undefined
    const head = joined.position
    const from = resumeFrom(head, message.since, message.epoch)
    const replay = from === undefined ? undefined : withinAccess(yield* bus.since(message.channel, from), grant.since)
    return { head, replay }
  }).pipe(Effect.result)
  if (Result.isFailure(joined)) {
    yield* drop(live, key)
    outbox.offer(Wire.error(message.id, frameCodeFor(joined.failure)))
    return
  }
  if (joined.success === undefined) return
  const { head } = joined.success
  let { replay } = joined.success
  let until = grant.until
  // A care change announced while this subscribe was out may have ended the access it was
  // given: check again, until no change came during the check, before anything is answered.
  while (restsOnCare && live.careChanges !== heard) {
    heard = live.careChanges
    const again = yield* allowed(live, message.channel).pipe(Effect.result)
    if (live.subscriptions.get(key) !== subscription) return
    if (Result.isFailure(again) || again.success === undefined) {
      yield* drop(live, key)
      if (Result.isFailure(again)) {
        outbox.offer(Wire.error(message.id, "unavailable"))
        return
      }
      return yield* deny(live, message.id, message.channel)
    }
    // A new grant may start later than the one the replay was cut to.
    replay = withinAccess(replay, again.success.since)
    until = again.success.until
  }
  // Unsubscribed (or replaced) while it was out: the client already has its answer.
  if (live.subscriptions.get(key) !== subscription) return
  subscription.answered = true
  outbox.offer(Wire.subscribed(message.id, message.channel, head, replay !== undefined))
  const tally = subscription.settle(head, replay ?? [])
  yield* Metrics.delivered(tally.sent, tally.refused)
  expireAt(live, subscription, until)
  yield* audit.append({ event: "subscribe.allowed", subject: live.subject, channel: message.channel, result: "ok" })
})

const refresh = Effect.fnUntraced(function*(live: Live, id: string, ticket: string) {
  const outbox = live.transport.outbox
  const renewed = yield* Tickets.consume(ticket, live.transport.origin).pipe(Effect.result)
  if (Result.isFailure(renewed) || !sameUser(renewed.success.user, live.user!)) {
    outbox.offer(Wire.error(id, "forbidden"))
    return
  }
  const now = yield* Clock.currentTimeMillis
  // The closing record keeps the jti of the ticket that opened the session, as ws.opened has it.
  live.deadline = Math.min(renewed.success.sessionExpiresAt, now + live.services.settings.sessionMaxS * 1000)
  outbox.offer(Wire.refreshed(id, new Date(live.deadline)))
})

const sameUser = (a: User, b: User): boolean => a._tag === b._tag && a.ref === b.ref
