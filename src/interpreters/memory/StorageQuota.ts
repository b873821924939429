// Storage quotas in one process: each service's counts per hour, exact, pruned as hours leave
// the window (domain/Quota.ts has the rule).
import { Clock, Effect, Layer } from "effect"
import { RateLimited } from "../../domain/Errors.ts"
import { hourOf, over, retryAfterMs, type Usage, WINDOW_HOURS } from "../../domain/Quota.ts"
import { Settings } from "../../services/Settings.ts"
import { StorageQuota } from "../../services/StorageQuota.ts"

export const layer = Layer.effect(
  StorageQuota,
  Effect.gen(function*() {
    const rule = (yield* Settings).storage
    const hours = new Map<string, Map<number, { bytes: number; channels: number }>>()
    const usage = (service: string, now: number): Usage => {
      const mine = hours.get(service)
      let bytes = 0
      let channels = 0
      if (mine === undefined) return { bytes, channels }
      const oldest = hourOf(now) - WINDOW_HOURS + 1
      for (const [hour, counts] of mine) {
        if (hour < oldest) mine.delete(hour)
        else {
          bytes += counts.bytes
          channels += counts.channels
        }
      }
      if (mine.size === 0) hours.delete(service)
      return { bytes, channels }
    }
    return StorageQuota.of({
      check: (service) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          over(usage(service, now), rule)
            ? Effect.fail(new RateLimited({ scope: "storage", retryAfterMs: retryAfterMs(now) }))
            : Effect.void),
      charge: (service, bytes, newChannel) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.sync(() => {
            const mine = hours.get(service) ?? new Map()
            hours.set(service, mine)
            const counts = mine.get(hourOf(now)) ?? { bytes: 0, channels: 0 }
            counts.bytes += bytes
            counts.channels += newChannel ? 1 : 0
            mine.set(hourOf(now), counts)
          }))
    })
  })
)
