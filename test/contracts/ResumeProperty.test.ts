// The promise of v1.1, as a property of the memory event bus (the same follower rules run on
// Redis): for any interleaving of publishes, pub/sub drops (the fan-out goes deaf, then a
// reconnect catches up, or the next event shows the gap) and lost channel state, a client that starts from its `subscribed`
// position and applies each event and reset either sees every seq of an epoch exactly once and
// in order, each the event the store holds there, or is reset before the gap; and it ends
// where the store is.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import fc from "fast-check"
import type { Position } from "../../src/domain/Position.ts"
import * as MemoryEventBus from "../../src/interpreters/memory/EventBus.ts"
import { EventBus } from "../../src/services/EventBus.ts"
import { channel, draft, fresh, until } from "./support.ts"

type Op =
  | { readonly _tag: "publish"; readonly count: number }
  | { readonly _tag: "drop" }
  | { readonly _tag: "reconnect"; readonly notified: boolean }
  | { readonly _tag: "lose" }

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 40 }).map((count) => ({ _tag: "publish" as const, count })) },
  { weight: 2, arbitrary: fc.constant({ _tag: "drop" as const }) },
  // A reconnect nobody was told of: the gap shows in the next event's seq.
  { weight: 2, arbitrary: fc.boolean().map((notified) => ({ _tag: "reconnect" as const, notified })) },
  { weight: 1, arbitrary: fc.constant({ _tag: "lose" as const }) }
)

/** A v1.1 client applying frames to its saved position; any event that is not the next one is a violation. */
class ClientModel {
  position: Position
  readonly violations: Array<string> = []
  /** What it got at each position, checked against the store once the run is over. */
  readonly got: Array<readonly [string, string]> = []
  constructor(subscribed: Position) {
    this.position = subscribed
  }
  event(epoch: string, seq: number, id: string) {
    const { epoch: at, seq: last } = this.position
    if (epoch !== at || seq !== last + 1) this.violations.push(`event ${epoch}:${seq} after ${at}:${last} without a reset`)
    this.got.push([`${epoch}:${seq}`, id])
    this.position = { epoch, seq }
  }
  reset(head: Position) {
    this.position = head
  }
}

const run = (ops: ReadonlyArray<Op>) =>
  Effect.gen(function*() {
    const bus = yield* EventBus
    const faults = yield* MemoryEventBus.MemoryBus
    const on = channel()
    /** "epoch:seq" → the id the store gave that position. */
    const published = new Map<string, string>()
    let client: ClientModel | undefined
    const position = yield* bus.subscribe(on, {
      event: (e) => client!.event(e.epoch, e.seq, e.id),
      reset: (head) => client!.reset(head)
    })
    client = new ClientModel(position())
    const publish = Effect.gen(function*() {
      const d = draft(on)
      const answer = yield* bus.publish(d, fresh("key"))
      published.set(`${answer.epoch}:${answer.seq}`, d.id)
    })
    for (const step of ops) {
      if (step._tag === "publish") for (let i = 0; i < step.count; i++) yield* publish
      else if (step._tag === "drop") faults.deafen()
      else if (step._tag === "reconnect") faults.reconnect(step.notified)
      else faults.lose(on)
    }
    // The network heals and one more event comes: the client must end where the store is.
    faults.reconnect()
    yield* publish
    const head = yield* bus.head(on)
    yield* until(() => client!.position.epoch === head.epoch && client!.position.seq === head.seq, "the client reaches the head")
    for (const [at, id] of client.got) {
      if (published.get(at) !== id) client.violations.push(`event ${at} is not the one the store holds`)
    }
    return client.violations
  }).pipe(Effect.scoped, Effect.provide(Layer.fresh(MemoryEventBus.layer)))

describe("resume you can trust (property, memory event bus)", () => {
  it("every seq of an epoch once and in order, or a reset before the gap (300 interleavings)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 25 }), async (ops) => {
        expect(await Effect.runPromise(run(ops))).toEqual([])
      }),
      { numRuns: 300 }
    )
  }, 60_000)
})
