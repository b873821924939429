// What the audit trail records (contract §8). Entries carry raw refs (and a refused caller's
// address) only in memory: the sink pseudonymizes subject, channel and peer with keyed hashes
// before anything is written.
import type { Channel } from "./Channel.ts"

export type AuditEvent =
  | "ticket.issued"
  | "ticket.consumed"
  | "ticket.rejected"
  | "ws.rejected"
  /** Refused authentication (401) or authorization (403) on an HTTPS route, counted per address. */
  | "auth.refused"
  | "ws.opened"
  | "ws.closed"
  | "subscribe.allowed"
  | "subscribe.denied"
  | "event.published"
  | "delivery.failed"
  | "session.revoked"
  | "relationship.granted"
  | "relationship.ended"
  | "rate.limited"
  /** The first record of each start: `cause` new, resumed (after a seal) or unsealed (after a crash). */
  | "audit.opened"
  /** The last record of a cleanly closed log: a log without it may have lost its tail. */
  | "audit.closed"

export interface AuditEntry {
  readonly event: AuditEvent
  readonly jti?: string
  /** Raw subject ref; hashed by the sink. */
  readonly subject?: string
  /** Raw channel; its ref is hashed by the sink. */
  readonly channel?: Channel
  readonly origin?: string
  readonly result?: "ok" | "refused" | "failed"
  /** A fixed code (an error tag or cause), never free text. */
  readonly cause?: string
  readonly close?: number
  /**
   * Raw network address of a refused caller, for aggregated refusals (programs/Refusals.ts);
   * the sink writes only its keyed pseudonym, under a key of its own.
   */
  readonly peer?: string
  /** How many refusals one aggregated record stands for (same address, event and cause). */
  readonly count?: number
}
