// The invariants of the fault-injection suite as pure checks over what the test saw: the frames
// of one session (seq gap-free per subscription, nothing past a revocation or care end plus
// BOUND_MS) and one node's audit files (a record for every acknowledged action).
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { BOUND_MS } from "./bounds.ts"
import type { Received } from "./client.ts"

/** A broken invariant: which one, and for which session or channel (test names only). */
export class Violation extends Error {
  readonly invariant: string
  constructor(invariant: string, where: string, detail: string) {
    super(`invariant "${invariant}" broke for ${where}: ${detail}`)
    this.invariant = invariant
  }
}

/** What a session's frames are judged against: what it asked for and what was taken away. */
export interface SessionFacts {
  /** "S3 (clinician C0 on node a)". */
  readonly name: string
  readonly role: "patient" | "clinician"
  /** The `since` sent with each subscribe, by request id (undefined: none sent). */
  readonly sinces: ReadonlyMap<string, number | undefined>
  /** Acknowledged revocations of this session's subject after it opened: ack times. */
  readonly revokedAt: ReadonlyArray<number>
  /** Acknowledged care ends and grants that concern this clinician, by patient channel: ack times. */
  readonly careEndedAt: ReadonlyMap<string, ReadonlyArray<number>>
  readonly careGrantedAt: ReadonlyMap<string, ReadonlyArray<number>>
  /** Turns a real channel into its test name ("patient:P1") for messages. */
  readonly label: (channel: string) => string
}

/** A live subscription as its frames show it: the epoch and next seq it must get. */
export interface Subscription {
  readonly channel: string
  readonly startedAt: number
  epoch: string | undefined
  expected: number
}

/**
 * Replays one session's frames. Within one subscription (from its `subscribed` frame until an
 * `unsubscribed`, an `error` naming the channel, or the close) events come in its epoch with
 * consecutive seqs starting after `since` (recovered) or after `subscribed.seq`, or after the
 * `seq` of a `reset` (protocol v1.1: the explicit signal of a gap, with the new epoch); none comes outside a
 * subscription, nor later than BOUND_MS after an acknowledged revocation or care end.
 * Returns the subscriptions still live, or throws the first violation.
 */
export const replay = (facts: SessionFacts, received: ReadonlyArray<Received>): Map<string, Subscription> => {
  const live = new Map<string, Subscription>()
  const where = (channel: string) => `session ${facts.name}, channel ${facts.label(channel)}`
  for (const { at, frame } of received) {
    if (frame.type === "subscribed") {
      const since = facts.sinces.get(frame.id)
      const from = frame.recovered === true && since !== undefined ? since : frame.seq
      live.set(frame.channel, { channel: frame.channel, startedAt: at, epoch: frame.epoch, expected: from + 1 })
    } else if (frame.type === "reset") {
      const subscription = live.get(frame.channel)
      if (subscription === undefined) {
        throw new Violation("no reset outside a subscription", where(frame.channel), `got a reset to seq ${frame.seq} while not subscribed`)
      }
      subscription.epoch = frame.epoch
      subscription.expected = frame.seq + 1
    } else if (frame.type === "unsubscribed" || (frame.type === "error" && frame.channel !== undefined)) {
      live.delete(frame.channel)
    } else if (frame.type === "event") {
      const subscription = live.get(frame.channel)
      if (subscription === undefined) {
        throw new Violation("no event outside a subscription", where(frame.channel), `got seq ${frame.seq} while not subscribed`)
      }
      if (frame.seq !== subscription.expected || frame.epoch !== subscription.epoch) {
        throw new Violation("seq gap-free per subscription", where(frame.channel),
          `expected seq ${subscription.expected} of epoch ${subscription.epoch}, got ${frame.seq} of ${frame.epoch} with no reset, error, close or recovered:false in between`)
      }
      subscription.expected = frame.seq + 1
      const revoked = facts.revokedAt.find((ack) => at > ack + BOUND_MS)
      if (revoked !== undefined) {
        throw new Violation("no event after a revocation + BOUND_MS", where(frame.channel),
          `seq ${frame.seq} arrived ${at - revoked} ms after the revocation was acknowledged`)
      }
      // Care ended at `ack` and not granted again until `regrant`: a subscription from before the
      // new grant (even one a racing subscribe got just after the end) must not deliver past the bound.
      const grants = facts.careGrantedAt.get(frame.channel) ?? []
      const ended = (facts.careEndedAt.get(frame.channel) ?? []).find((ack) => {
        const regrant = Math.min(...grants.filter((grant) => grant > ack))
        return at > ack + BOUND_MS && at < regrant && subscription.startedAt < regrant
      })
      if (ended !== undefined) {
        throw new Violation("no event after a care end + BOUND_MS", where(frame.channel),
          `seq ${frame.seq} arrived ${at - ended} ms after the care end was acknowledged`)
      }
    }
  }
  return live
}

/** How many audit records a node must hold, by "<event> <subject pseudonym> <channel pseudonym>". */
export type AuditLedger = Map<string, number>

export const auditKey = (event: string, subject: string | undefined, channel: string | undefined) =>
  `${event} ${subject ?? "-"} ${channel ?? "-"}`

/** The records in a node's files, counted like the ledger (a torn last line is no record). */
export const auditCounts = (dir: string, node: string): Map<string, number> => {
  const counts = new Map<string, number>()
  const files = readdirSync(dir).filter((name) => name.startsWith(`audit-${node}-`) && name.endsWith(".jsonl")).sort()
  for (const file of files) {
    for (const line of readFileSync(join(dir, file), "utf8").split("\n")) {
      const record = parseRecord(line)
      if (record === undefined) continue
      const key = auditKey(record.event, record.subject, record.channel)
      counts.set(key, (counts.get(key) ?? 0) + 1)
    }
  }
  return counts
}

const parseRecord = (line: string): { event: string; subject?: string; channel?: string } | undefined => {
  if (line.trim().length === 0) return undefined
  try {
    return JSON.parse(line)
  } catch {
    return undefined
  }
}

/** The ledger entries the files hold fewer records for than were acknowledged. */
export const missingAudit = (ledger: AuditLedger, counts: Map<string, number>) =>
  [...ledger].flatMap(([key, acked]) => {
    const found = counts.get(key) ?? 0
    return found < acked ? [{ key, acked, found }] : []
  })
