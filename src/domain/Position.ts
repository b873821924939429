// A channel's position is (epoch, seq): the epoch names one life of the channel's sequence
// state, so a store that lost or rolled back that state can never pass for the one a client
// followed. The rules every bus interpreter and the session apply to positions live here, pure.
import { Schema } from "effect"
import type { Event } from "./Event.ts"

export const EPOCH_PATTERN = /^[A-Za-z0-9]{8,16}$/
export const Epoch = Schema.String.check(Schema.isPattern(EPOCH_PATTERN))

export interface Position {
  readonly epoch: string
  /** The last seq of the epoch (0: none yet). */
  readonly seq: number
}

/**
 * Why a live subscription was reset (the `tidings_resets_total` causes):
 * - `epoch`: the store's epoch changed (its state was lost and made anew, or another node
 *   retired it after a rollback);
 * - `rollback`: this node saw the store's seq go backwards under the epoch it delivered, and
 *   retired that epoch;
 * - `history`: a gap (after a pub/sub drop) reaches further back than the history;
 * - `catchup_failed`: the catch-up after a gap could not read the store.
 */
export const RESET_CAUSES = ["epoch", "rollback", "history", "catchup_failed"] as const
export type ResetCause = typeof RESET_CAUSES[number]

/**
 * What a follower does with an incoming event, given the position it last delivered and the
 * epoch it last retired:
 * - `deliver`: the next seq of the same epoch;
 * - `stale`: same epoch, seq not above the last one: a duplicate when it was read back around
 *   a catch-up, a rollback of the store when it arrives live (pub/sub is in order, at most once);
 * - `gap`: same epoch, seqs were skipped: catch up from history;
 * - `epoch`: another epoch: reset to it;
 * - `retired`: an epoch this follower has already left (published before the switch).
 */
export type Verdict = "deliver" | "stale" | "gap" | "epoch" | "retired"

export const judge = (last: Position, incoming: Position, retired: string | undefined): Verdict => {
  if (incoming.epoch !== last.epoch) return incoming.epoch === retired ? "retired" : "epoch"
  if (incoming.seq === last.seq + 1) return "deliver"
  return covered(last.epoch, last.seq, incoming) ? "stale" : "gap"
}

/**
 * The de-duplication rule, for a follower and for a subscription that has told its client
 * (epoch, seq): an event at or below it in the same epoch was already handed over. Two fields
 * rather than a Position, so a subscription allocates nothing per delivery to ask.
 */
export const covered = (epoch: string, seq: number, incoming: Position): boolean =>
  incoming.epoch === epoch && incoming.seq <= seq

/**
 * The since window: where a resuming client's replay starts, given the channel's head, or
 * undefined when there is nothing to replay from (no `since`, another epoch, or ahead of the
 * channel). `since` without `epoch` (v1 clients) is taken in the head's epoch.
 */
export const resumeFrom = (head: Position, since: number | undefined, epoch: string | undefined): Position | undefined => {
  if (since === undefined) return undefined
  const from = { epoch: epoch ?? head.epoch, seq: since }
  return from.epoch !== head.epoch || from.seq > head.seq ? undefined : from
}

/**
 * The events after `from` in the store's current epoch, oldest first, when they are all there:
 * `from` is in the current epoch and not ahead of it, and the history reaches back to its
 * next seq. Undefined when they cannot be given (the client must refetch).
 */
export const replay = (
  head: Position,
  history: ReadonlyArray<Event>,
  from: Position
): ReadonlyArray<Event> | undefined => {
  if (resumeFrom(head, from.seq, from.epoch) === undefined) return undefined
  const events = history.filter((e) => e.epoch === head.epoch && e.seq > from.seq).sort((a, b) => a.seq - b.seq)
  // Every seq from from + 1 to head, none missing.
  if (events.length !== head.seq - from.seq) return undefined
  for (let i = 0; i < events.length; i++) if (events[i]!.seq !== from.seq + 1 + i) return undefined
  return events
}

/**
 * A catch-up from `last`, given the store's head and history read in one step: the events to
 * deliver in order; a reset to the head (epoch changed, or history does not cover the gap);
 * or `rollback` when the head is behind what was already delivered under the same epoch.
 */
export type CatchUp =
  | { readonly _tag: "Deliver"; readonly events: ReadonlyArray<Event> }
  | { readonly _tag: "Reset"; readonly head: Position; readonly cause: ResetCause }
  | { readonly _tag: "Rollback" }

export const catchUp = (last: Position, head: Position, history: ReadonlyArray<Event>): CatchUp => {
  if (head.epoch !== last.epoch) return { _tag: "Reset", head, cause: "epoch" }
  if (head.seq < last.seq) return { _tag: "Rollback" }
  const events = replay(head, history, last)
  return events === undefined ? { _tag: "Reset", head, cause: "history" } : { _tag: "Deliver", events }
}
