// Storage quotas on Redis: each service's counts per hour in hashes under its pseudonym (one
// slot), added to once a second by each node, which reads back the window's totals in the same
// script. A publish is checked against those totals plus what the node counted since: no round
// trip per publish, and the cluster may overshoot by what its nodes accept in a second.
import { Clock, Effect, Layer } from "effect"
import { RateLimited } from "../../domain/Errors.ts"
import { HOUR_MS, over, retryAfterMs, type Usage, windowHours, WINDOW_HOURS } from "../../domain/Quota.ts"
import { Settings } from "../../services/Settings.ts"
import { StorageQuota } from "../../services/StorageQuota.ts"
import { RedisClient } from "./Client.ts"
import { DataKeys } from "./DataKey.ts"
import { named } from "./Keys.ts"
import * as Script from "./Script.ts"

// KEYS: the service's hourly hashes of the window, oldest first (the last is this hour's).
// ARGV: bytes and channels to add to this hour, its time to live (s). Returns the window's totals.
const TALLY = Script.make<ReadonlyArray<string>, [bytes: number, channels: number, ttl: number], [number, number]>(`
local current = KEYS[#KEYS]
if tonumber(ARGV[1]) > 0 or tonumber(ARGV[2]) > 0 then
  redis.call('HINCRBY', current, 'b', ARGV[1])
  redis.call('HINCRBY', current, 'c', ARGV[2])
  redis.call('EXPIRE', current, tonumber(ARGV[3]))
end
local bytes, channels = 0, 0
for i = 1, #KEYS do
  local counts = redis.call('HMGET', KEYS[i], 'b', 'c')
  bytes = bytes + (tonumber(counts[1]) or 0)
  channels = channels + (tonumber(counts[2]) or 0)
end
return {bytes, channels}
`)

/** How often a node adds its counts to the shared ones and reads the totals back. */
export const FLUSH_MS = 1_000
/** An hour's counts outlive the window by an hour, so a late flush never lands on nothing. */
const HOUR_TTL_S = ((WINDOW_HOURS + 1) * HOUR_MS) / 1000

interface Known {
  readonly key: (hour: number) => string
  /** The cluster's totals at the last flush, and this node's counts since. */
  shared: Usage
  pending: { bytes: number; channels: number }
}

export const layer = Layer.effect(
  StorageQuota,
  Effect.gen(function*() {
    const redis = (yield* RedisClient).commands
    const rule = (yield* Settings).storage
    const keys = named((yield* DataKeys).name)
    const services = new Map<string, Known>()
    const usage = (known: Known): Usage => ({
      bytes: known.shared.bytes + known.pending.bytes,
      channels: known.shared.channels + known.pending.channels
    })

    const flushOne = (service: string, known: Known, now: number) => {
      const sent = known.pending
      known.pending = { bytes: 0, channels: 0 }
      const hourKeys = windowHours(now).map(known.key)
      return Effect.tryPromise(() => TALLY.run(redis, hourKeys, [sent.bytes, sent.channels, HOUR_TTL_S])).pipe(
        Effect.match({
          onSuccess: ([bytes, channels]) => {
            known.shared = { bytes, channels }
          },
          // Counted again at the next flush; the node goes on deciding from what it knows.
          onFailure: () => {
            known.pending = { bytes: known.pending.bytes + sent.bytes, channels: known.pending.channels + sent.channels }
          }
        })
      )
    }
    // Services with counts to add, and those refused (their totals fall as hours pass); a
    // service quiet and under its quota is forgotten.
    const flush = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const due: Array<[string, Known]> = []
      for (const [service, known] of services) {
        if (known.pending.bytes > 0 || known.pending.channels > 0 || over(known.shared, rule)) due.push([service, known])
        else services.delete(service)
      }
      return Effect.forEach(due, ([service, known]) => flushOne(service, known, now), { concurrency: "unbounded", discard: true })
    })
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(FLUSH_MS), flush)))

    const knownOf = (service: string): Known => {
      let known = services.get(service)
      if (known === undefined) {
        known = { key: keys.quota(service), shared: { bytes: 0, channels: 0 }, pending: { bytes: 0, channels: 0 } }
        services.set(service, known)
      }
      return known
    }
    return StorageQuota.of({
      check: (service) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const known = services.get(service)
          return known !== undefined && over(usage(known), rule)
            ? Effect.fail(new RateLimited({ scope: "storage", retryAfterMs: retryAfterMs(now) }))
            : Effect.void
        }),
      charge: (service, bytes, newChannel) =>
        Effect.sync(() => {
          const known = knownOf(service)
          known.pending.bytes += bytes
          known.pending.channels += newChannel ? 1 : 0
        })
    })
  })
)
