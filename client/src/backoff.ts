// Reconnect delays: exponential backoff with full jitter (a uniformly random wait up to the
// ceiling), so a thousand clients dropped by one node do not come back in one wave.

export const BASE_MS = 500
export const CAP_MS = 30_000
/** After a rate-limited close (4429, `slow`): the gateway asked us to back off harder. */
export const SLOW_BASE_MS = 5_000
export const SLOW_CAP_MS = 120_000

/** The ceiling for the nth consecutive retry (n from 0). */
export const ceilingMs = (attempt: number, slow: boolean): number =>
  Math.min(slow ? SLOW_CAP_MS : CAP_MS, (slow ? SLOW_BASE_MS : BASE_MS) * 2 ** Math.min(attempt, 20))

/** A full-jitter delay: uniform in [0, ceiling). `random` is Math.random unless a test fixes it. */
export const delayMs = (attempt: number, slow: boolean, random: () => number = Math.random): number =>
  Math.floor(random() * ceilingMs(attempt, slow))
