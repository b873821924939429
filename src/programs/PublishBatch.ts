// A service publishes up to 100 events in one request. Each is decoded, then admitted and
// recorded by the single-event program's own steps (Publish.ts), exactly as if posted alone;
// only the bus step is shared: one `publishAll` in request order, so a channel's events take
// their seqs in that order (on Redis, one script call per hash slot).
import { Effect, Exit, Result } from "effect"
import type { Accepted, PublishRequest } from "../domain/Event.ts"
import type { GatewayError } from "../domain/Errors.ts"
import type { Principal } from "../domain/Principal.ts"
import { decodeBatchEvent } from "../domain/Requests.ts"
import { EventBus, type PublishItem } from "../services/EventBus.ts"
import { auditReady } from "./Admit.ts"
import { admitted, publisher, recorded } from "./Publish.ts"

export type Outcome = Exit.Exit<Accepted, GatewayError>

/**
 * One outcome per item, in the request's order: a bad item (malformed, a kind off the list,
 * rate-limited, a failed commit) is its own failure and never fails the others. What concerns
 * the caller rather than an event fails the whole batch before any of it begins: not a
 * publishing service (Forbidden), or an audit sink that cannot take records (Unavailable).
 */
export const publishBatch = Effect.fnUntraced(function*(principal: Principal, items: ReadonlyArray<unknown>) {
  const { clientId } = yield* publisher(principal)
  yield* auditReady
  const outcomes: Array<Outcome> = new Array(items.length)
  const admittedItems: Array<{ readonly index: number; readonly request: PublishRequest; readonly item: PublishItem }> = []
  // Admission runs concurrently (a rate token may be a Redis round trip); the seqs do not
  // depend on it, as the bus takes the admitted items in request order below.
  yield* Effect.forEach(items, (raw, index) => {
    const decoded = decodeBatchEvent(raw)
    if (Result.isFailure(decoded)) {
      outcomes[index] = Exit.fail(decoded.failure)
      return Effect.void
    }
    const request = decoded.success
    return Effect.map(Effect.exit(admitted(clientId, request)), (exit) => {
      if (Exit.isSuccess(exit)) admittedItems.push({ index, request, item: exit.value })
      else outcomes[index] = Exit.failCause(exit.cause)
    })
  }, { concurrency: "unbounded", discard: true })
  admittedItems.sort((a, b) => a.index - b.index)
  const published = yield* (yield* EventBus).publishAll(admittedItems.map(({ item }) => item))
  yield* Effect.forEach(admittedItems, ({ index, request }, n) => {
    const result = published[n]!
    if (Result.isFailure(result)) {
      outcomes[index] = Exit.fail(result.failure)
      return Effect.void
    }
    return Effect.map(Effect.exit(recorded(clientId, request, result.success)), (outcome) => {
      outcomes[index] = outcome
    })
  }, { concurrency: "unbounded", discard: true })
  return outcomes
})
