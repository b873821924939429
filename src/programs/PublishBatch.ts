// A service publishes up to 100 events in one request. Each is decoded, authorized,
// rate-limited, made idempotent and audited by the single-event program, exactly as if posted
// alone. Channels run concurrently (on Redis, ioredis pipelines the concurrent publish scripts);
// the events of one channel run one after another, so they take their seqs in request order.
import { Effect, Exit, Result } from "effect"
import { print } from "../domain/Channel.ts"
import type { Accepted, PublishRequest } from "../domain/Event.ts"
import { Forbidden, type GatewayError } from "../domain/Errors.ts"
import { hasScope, type Principal, Scope } from "../domain/Principal.ts"
import { decodeBatchEvent } from "../domain/Requests.ts"
import { auditReady } from "./Admit.ts"
import { publish } from "./Publish.ts"

export type Outcome = Exit.Exit<Accepted, GatewayError>

/**
 * One outcome per item, in the request's order: a bad item (malformed, a kind off the list,
 * rate-limited, a failed commit) is its own failure and never fails the others. What concerns
 * the caller rather than an event fails the whole batch before any of it begins: not a
 * publishing service (Forbidden), or an audit sink that cannot take records (Unavailable).
 */
export const publishBatch = Effect.fnUntraced(function*(principal: Principal, items: ReadonlyArray<unknown>) {
  if (principal._tag !== "Service" || !hasScope(principal, Scope.publish)) return yield* new Forbidden()
  yield* auditReady
  const outcomes: Array<Outcome> = new Array(items.length)
  // Item indices by channel: a channel's events keep their order, channels do not wait on each other.
  const channels = new Map<string, Array<readonly [number, PublishRequest]>>()
  items.forEach((item, index) => {
    const decoded = decodeBatchEvent(item)
    if (Result.isFailure(decoded)) {
      outcomes[index] = Exit.fail(decoded.failure)
      return
    }
    const key = print(decoded.success.channel)
    const queue = channels.get(key)
    if (queue === undefined) channels.set(key, [[index, decoded.success]])
    else queue.push([index, decoded.success])
  })
  yield* Effect.forEach(
    channels.values(),
    (queue) =>
      Effect.forEach(queue, ([index, request]) =>
        Effect.map(Effect.exit(publish(principal, request)), (outcome) => {
          outcomes[index] = outcome
        }), { discard: true }),
    { concurrency: "unbounded", discard: true }
  )
  return outcomes
})
