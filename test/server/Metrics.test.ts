// The metric labels' fixed sets: every helper is driven with every value it can take, in a
// fresh registry, and every label value of the resulting exposition must belong to its set.
import { Effect, Metric } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { describe, expect, it } from "vitest"
import { CloseTable } from "../../src/domain/Close.ts"
import { RateScope, TicketCause, UnauthenticatedCause } from "../../src/domain/Errors.ts"
import { DEFAULT_EVENT_KINDS } from "../../src/domain/Event.ts"
import * as Metrics from "../../src/programs/Metrics.ts"
import { AccessTokenMetrics } from "../../src/services/AccessTokens.ts"
import { labelsOutsideSets, parseExposition, valueOf } from "./exposition.ts"

describe("metric labels", () => {
  it("take only values from their fixed sets, whatever the helpers are given", async () => {
    const allowed = new Set(["https://app.example.test"])
    const text = await Effect.runPromise(Effect.gen(function*() {
      for (const row of Object.values(CloseTable)) yield* Metrics.closed(row.code)
      yield* Metrics.closed(4999) // not in the table: folded into 1011, never a new series
      for (const result of ["opened", "refused"] as const) yield* Metrics.connected(result)
      for (const type of Metrics.CLIENT_MESSAGE_TYPES) yield* Metrics.clientMessage(type)
      for (const scope of RateScope.literals) yield* Metrics.rateLimited(scope)
      for (const kind of DEFAULT_EVENT_KINDS) yield* Metrics.eventPublished(kind)
      for (const reason of Metrics.UPGRADE_REJECTIONS) {
        for (const origin of [undefined, "null", "https://evil.example", "https://app.example.test"]) {
          yield* Metrics.upgradeRejected(reason, origin, allowed)
        }
      }
      for (const cause of UnauthenticatedCause.literals) yield* Metrics.authFailed("token", cause)
      for (const cause of TicketCause.literals) yield* Metrics.authFailed("ticket", cause)
      yield* Metrics.delivered(2, 1)
      for (const source of Object.values(AccessTokenMetrics)) yield* Metric.update(source, 1)
      yield* Metric.modify(Metrics.connections, 1)
      yield* Metric.modify(Metrics.subscriptions, 1)
      Metrics.recordFanOut(yield* Effect.context<never>(), 3, 0, 12)
      return yield* PrometheusMetrics.format()
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))
    const samples = parseExposition(text)
    expect(labelsOutsideSets(samples, { kinds: DEFAULT_EVENT_KINDS, origins: [...allowed] })).toEqual([])
    expect(text).not.toContain("evil.example")
    expect(valueOf(samples, "tidings_closes_total", { code: "1011" })).toBe(2)
    expect(valueOf(samples, "tidings_origin_rejections_total", { origin: "other" })).toBe(12)
    expect(valueOf(samples, "tidings_deliveries_total", { result: "sent" })).toBe(5)
    expect(valueOf(samples, "tidings_delivery_latency_ms_count")).toBe(1)
  })
})
