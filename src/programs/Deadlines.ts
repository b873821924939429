// The node's Deadlines (services/Deadlines.ts): one sweep on the Clock, once a second, over
// every watched session and subscription; what is due is taken out and expired.
import { Clock, Effect, Layer } from "effect"
import { Deadlines, SWEEP_MS, type Watched } from "../services/Deadlines.ts"

export const layer = Layer.effect(
  Deadlines,
  Effect.gen(function*() {
    const watched = new Set<Watched>()
    const sweep = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync(() => {
        for (const item of watched) {
          if (now >= item.dueAt()) {
            watched.delete(item)
            item.expire()
          }
        }
      }))
    // The Clock's sleep, so tests move it with TestClock; the fiber ends with the layer.
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(SWEEP_MS), sweep)))
    return Deadlines.of({
      watch: (item) => {
        watched.add(item)
      },
      unwatch: (item) => {
        watched.delete(item)
      },
      size: () => watched.size
    })
  })
)
