// One sweep for every session of the node: once a second, each session past its deadline
// (its token's expiry, TIDINGS_SESSION_MAX_S, or TIDINGS_IDLE_TIMEOUT_S without a message) is
// ended. A sleeping fiber and timer per session cost an idle socket more than its TLS state.
import { Clock, Context, Effect, Layer } from "effect"

/** A session as the sweep sees it. Methods, not closures: nothing is allocated per session. */
export interface Watched {
  /** When it must end (ms, the Clock's time). */
  readonly dueAt: () => number
  /** Ends it; called once, after which it is no longer watched. */
  readonly expire: () => void
}

/** The sweep's period: a session ends at most this long after its deadline. */
export const SWEEP_MS = 1_000

export class Deadlines extends Context.Service<Deadlines, {
  readonly watch: (session: Watched) => void
  readonly unwatch: (session: Watched) => void
  /** Sessions being watched (for tests and stats). */
  readonly size: () => number
}>()("tidings/Deadlines") {
  static readonly layer = Layer.effect(
    Deadlines,
    Effect.gen(function*() {
      const watched = new Set<Watched>()
      const sweep = Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.sync(() => {
          for (const session of watched) {
            if (now >= session.dueAt()) {
              watched.delete(session)
              session.expire()
            }
          }
        }))
      // The Clock's sleep, so tests move it with TestClock; the fiber ends with the layer.
      yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(SWEEP_MS), sweep)))
      return Deadlines.of({
        watch: (session) => {
          watched.add(session)
        },
        unwatch: (session) => {
          watched.delete(session)
        },
        size: () => watched.size
      })
    })
  )
}
