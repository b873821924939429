// Specifies a batch publish as a program, on the memory interpreters and the TestClock: one
// outcome per item in request order, each item going through the single-event program (kind,
// rate limit, idempotency, audit), and refusals that concern the caller failing the batch.
import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, Option } from "effect"
import { TestClock } from "effect/testing"
import type { Principal } from "../../src/domain/Principal.ts"
import { MemoryAuditRecords } from "../../src/interpreters/memory/AuditLog.ts"
import * as PublishBatch from "../../src/programs/PublishBatch.ts"
import * as Settings from "../../src/services/Settings.ts"
import { memoryLayer } from "../support/layers.ts"

const service: Principal = { _tag: "Service", clientId: "svc_batch_prog1", scopes: ["events:publish"] }

const item = (patient: string, ref: string, extra: Record<string, unknown> = {}) => ({
  channel: `patient:${patient}`, kind: "result.available", ref, ...extra
})

/** Each outcome as the seq it took, or its error's tag. */
const summary = (outcomes: ReadonlyArray<PublishBatch.Outcome>) =>
  outcomes.map((outcome) =>
    Exit.isSuccess(outcome) ? outcome.value.seq : Option.match(Cause.findErrorOption(outcome.cause), { onNone: () => "defect", onSome: (error) => error._tag }))

describe("publishBatch", () => {
  it.effect("answers each item in order, publishing the good ones and refusing the bad ones alone", () =>
    Effect.gen(function*() {
      const outcomes = yield* PublishBatch.publishBatch(service, [
        item("pt_prog_batch_01", "res_prog_0001"),
        item("pt_prog_batch_01", "res_prog_0002", { kind: "diagnosis.updated" }),
        "not an event",
        item("pt_prog_batch_02", "res_prog_0003"),
        item("pt_prog_batch_01", "res_prog_0004")
      ])
      expect(summary(outcomes)).toEqual([1, "MalformedInput", "MalformedInput", 1, 2])
      const records = yield* (yield* MemoryAuditRecords).all
      expect(records.filter((r) => r.event === "event.published")).toHaveLength(3)
    }).pipe(Effect.provide(memoryLayer())))

  it.effect("takes a publish token per item: past the bucket, items are RateLimited until it refills", () =>
    Effect.gen(function*() {
      const batch = Array.from({ length: 5 }, (_, i) => item(`pt_prog_rate_0${i}`, "res_prog_rate1"))
      expect(summary(yield* PublishBatch.publishBatch(service, batch)).filter((s) => s === "RateLimited")).toHaveLength(2)
      expect(summary(yield* PublishBatch.publishBatch(service, batch))).toEqual(batch.map(() => "RateLimited"))
      yield* TestClock.adjust(Duration.seconds(1))
      expect(summary(yield* PublishBatch.publishBatch(service, batch.slice(0, 3))).filter((s) => s === "RateLimited")).toHaveLength(0)
    }).pipe(Effect.provide(memoryLayer({ rates: { ...Settings.defaults.rates, publishes: { scope: "publish", limit: 3, windowMs: 1_000 } } }))))

  it.effect("refuses the whole batch to a principal that may not publish, before any item", () =>
    Effect.gen(function*() {
      const patient: Principal = { _tag: "Patient", ref: "pt_prog_batch_01" as never }
      const error = yield* Effect.flip(PublishBatch.publishBatch(patient, [item("pt_prog_batch_01", "res_prog_0001")]))
      expect(error._tag).toBe("Forbidden")
      expect((yield* (yield* MemoryAuditRecords).all).filter((r) => r.event === "event.published")).toHaveLength(0)
    }).pipe(Effect.provide(memoryLayer())))
})
