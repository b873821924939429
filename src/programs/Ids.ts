// Fresh random identifiers (ticket jti, event id, session id) from the platform's CSPRNG.
// Web Crypto is a global in Node and browsers alike, so programs stay free of `node:*`.
import type { EventId, Jti } from "../domain/Ref.ts"
import * as Random from "../domain/Random.ts"

const base64url = (bytes: Uint8Array): string =>
  btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "")

const random = (n: number): string => base64url(Random.bytes(n))

export const jti = (): Jti => random(18) as Jti
export const eventId = (): EventId => `evt_${random(15)}` as EventId
export const sessionId = (): string => random(12)

/**
 * Ids that stay inside the deployment (session ids in the registry): a per-process random
 * prefix and a counter, unique across nodes and cheaper than random bytes. A counter tells how
 * many came before it, so never hand one to a client: use `correlation` for that.
 */
export const sequence = (prefix: string): (() => string) => {
  const run = random(6)
  let n = 0
  return () => `${prefix}-${run}-${(++n).toString(36)}`
}

/**
 * Correlation ids for log lines (`r-…` requests, sent back as `x-request-id`; `c-…`
 * connections): 12 random bytes each. No counter: a counter (even behind a random per-process
 * prefix) would tell a caller how many requests the node served, and let them guess others' ids.
 */
export const correlation = (prefix: string): (() => string) => () => `${prefix}-${random(12)}`
