// The time bounds of the fault-injection suite (issue 12), in one place: what the gateway
// promises (BOUND_MS) and how long the harness waits for its own processes.

/**
 * Revocations and care ends take effect within this long of their 202/204 answer (issue 12; the
 * gateway's own RECHECK_BOUND_MS must fit in it, see Invariants.test.ts).
 */
export const BOUND_MS = 20_000
/** A node or redis-server must be up (listening, ready) within this long of its start. */
export const START_MS = 20_000
/** One answer (an HTTPS reply, a frame the protocol owes the client) within this long. */
export const ANSWER_MS = 5_000
