// Fresh random identifiers (ticket jti, event id, session id) from the platform's CSPRNG.
// Web Crypto is a global in Node and browsers alike, so programs stay free of `node:*`.
import type { EventId, Jti } from "../domain/Ref.ts"

const base64url = (bytes: Uint8Array): string =>
  btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "")

const random = (n: number): string => base64url(crypto.getRandomValues(new Uint8Array(n)))

export const jti = (): Jti => random(18) as Jti
export const eventId = (): EventId => `evt_${random(15)}` as EventId
export const sessionId = (): string => random(12)

/**
 * Correlation ids for log lines (`r-…` requests, `c-…` connections): a per-process random
 * prefix and a counter, unique across nodes, cheap, and telling nothing about the caller.
 */
export const sequence = (prefix: string): (() => string) => {
  const run = random(6)
  let n = 0
  return () => `${prefix}-${run}-${(++n).toString(36)}`
}
