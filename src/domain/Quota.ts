// A publishing service's storage quota, as one rule both interpreters apply: what its events
// keep in the store (bytes, and channels they began) is counted per hour, and the last 24 hours
// must stay under the quota. Everything an event stores expires within a day, so this bounds
// what one service can hold at once.

export interface QuotaRule {
  /** Bytes of history and idempotency records the service's events may keep, per 24 h. */
  readonly bytes: number
  /** Channels the service's events may begin (a first event, or one after a quiet day), per 24 h. */
  readonly channels: number
}

export interface Usage {
  readonly bytes: number
  readonly channels: number
}

export const HOUR_MS = 3_600_000
/**
 * Hours in the window: the day everything an event stores lives, plus the hour it was counted
 * in (an event written late in an hour is still stored 24 h later, in the 25th hour).
 */
export const WINDOW_HOURS = 25

export const hourOf = (nowMs: number): number => Math.floor(nowMs / HOUR_MS)

/** The hours whose counts make up the window ending in `nowMs`'s hour, oldest first. */
export const windowHours = (nowMs: number): Array<number> => {
  const current = hourOf(nowMs)
  return Array.from({ length: WINDOW_HOURS }, (_, i) => current - WINDOW_HOURS + 1 + i)
}

export const over = (usage: Usage, rule: QuotaRule): boolean => usage.bytes >= rule.bytes || usage.channels >= rule.channels

/** How long until the oldest hour of the window leaves it (and frees what it counted). */
export const retryAfterMs = (nowMs: number): number => HOUR_MS - (nowMs % HOUR_MS)

/**
 * What one event keeps in the store for a day, counted against the quota: its history entry and
 * idempotency record, sealed, with their keys (measured: about 500 B for short refs; the
 * fields' lengths count three times, for the seal's base64 and both records).
 */
export const storedBytes = (fields: { readonly id: string; readonly kind: string; readonly ref: string }): number =>
  400 + 3 * (fields.id.length + fields.kind.length + fields.ref.length)
