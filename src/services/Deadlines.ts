// One clock for every timed end on a node: sessions past their deadline or idle timeout,
// subscriptions whose care relationship runs out. Implemented in programs/Deadlines.ts as one
// sweep, because a sleeping fiber and timer per session cost an idle socket more than its TLS state.
import { Context } from "effect"

/** Something with a due time. Methods, not closures: nothing is allocated per watched item. */
export interface Watched {
  /** When it is due (ms, the Clock's time); read on every sweep, so it may move later. */
  readonly dueAt: () => number
  /** Called once, when due; it is then no longer watched (watch it again to re-arm). */
  readonly expire: () => void
}

/** A watched item is expired at most this long after it is due. */
export const SWEEP_MS = 1_000

/**
 * Guarantee: `expire` is called once, no earlier than `dueAt()` and at most SWEEP_MS after
 * it by the Clock (TestClock moves it in tests), unless `unwatch` came first. Watching costs
 * no fiber and no timer per item.
 */
export class Deadlines extends Context.Service<Deadlines, {
  readonly watch: (item: Watched) => void
  readonly unwatch: (item: Watched) => void
  /** Items being watched (for tests and stats). */
  readonly size: () => number
}>()("tidings/Deadlines") {}
