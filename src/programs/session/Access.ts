// Whether a session may see a channel, now and later: the subscribe policy (and the care
// relationship a clinician's access to a patient rests on), the replay window it allows, and
// the re-checks a changed, expired or possibly missed care relationship calls for.
import { Clock, Effect } from "effect"
import type { Channel } from "../../domain/Channel.ts"
import { print } from "../../domain/Channel.ts"
import type { Unavailable } from "../../domain/Errors.ts"
import type { Event } from "../../domain/Event.ts"
import * as Policy from "../../domain/Policy.ts"
import * as Wire from "../../domain/Wire.ts"
import type { ActiveGrant } from "../../services/CareRelationships.ts"
import * as Metrics from "../Metrics.ts"
import type { Live } from "./Lifecycle.ts"
import { drop, expireAt } from "./Subscription.ts"

/** Access that never runs out and reaches back to the channel's first event: one's own channel. */
const ALWAYS: ActiveGrant = { since: Number.NEGATIVE_INFINITY, until: Number.POSITIVE_INFINITY }

/**
 * Since and until when the session may see the channel (`until` Infinity: while it lives), or
 * undefined when it may not.
 */
export const allowed = (live: Live, channel: Channel): Effect.Effect<ActiveGrant | undefined, Unavailable> => {
  const decision = Policy.canSubscribe(live.user!, channel)
  switch (decision._tag) {
    case "Allow":
      return Effect.succeed(ALWAYS)
    case "Deny":
      return Effect.succeed(undefined)
    case "IfCareRelationship":
      return Effect.flatMap(
        Clock.currentTimeMillis,
        (now) => live.services.care.active(decision.clinician, decision.patient, now)
      )
  }
}

/**
 * A replay reaches back only to the start of the current access: an event published before it
 * (say, while a care relationship had ended) is never sent. A replay that would need one is
 * no replay (`recovered: false`): the app refetches through its own API, which applies its rules.
 */
export const withinAccess = (replay: ReadonlyArray<Event> | undefined, since: number) =>
  replay === undefined || replay.every((event) => Date.parse(event.at) >= since) ? replay : undefined

// A held channel checked again. If the check itself fails (a backing service is down), the
// subscription ends: access is never kept on an answer we could not get.
export const reauthorize = Effect.fnUntraced(function*(live: Live, channel: Channel) {
  const key = print(channel)
  const subscription = live.subscriptions.get(key)
  if (subscription === undefined) return
  subscription.pause()
  const access = yield* allowed(live, channel).pipe(Effect.orElseSucceed(() => undefined))
  if (live.subscriptions.get(key) !== subscription) return
  if (access !== undefined) {
    const tally = subscription.settle()
    yield* Metrics.delivered(tally.sent, tally.refused)
    return expireAt(live, subscription, access.until)
  }
  yield* accessEnded(live, key, channel)
})

const accessEnded = Effect.fnUntraced(function*(live: Live, key: string, channel: Channel) {
  live.transport.outbox.offer(Wire.error(undefined, "forbidden", channel))
  yield* drop(live, key)
  yield* live.services.audit.append({ event: "subscribe.denied", subject: live.subject, channel, result: "refused", cause: "access_ended" })
})

// The registry's periodic check of the subscriptions that rest on a care relationship, in
// case an announcement was missed. Unlike `reauthorize` it holds nothing back, and an answer
// it could not get fails it rather than ending access: the registry retries each cycle and
// ends the session (4503) once its checks have failed for too long; a lapse in Redis must not
// read to the client as access ended.
export const recheckCare = (live: Live, care: ReadonlyArray<readonly [string, Channel]>) =>
  Effect.forEach(care, ([key, channel]) =>
    Effect.flatMap(allowed(live, channel), (access) =>
      access !== undefined || !live.subscriptions.has(key) ? Effect.void : accessEnded(live, key, channel)), {
    concurrency: "unbounded",
    discard: true
  })
