// Reading a compact JWS (RFC 7515): its three base64url parts, and a part as a JSON object.
// Shared by the ticket signer and the access-token verifier, which check different things
// but must read the same bytes the same way.

/** One part: base64url characters only (no padding), so nothing else reaches the decoder. */
export const PART = /^[A-Za-z0-9_-]+$/

/** The three parts, or undefined when the token is not shaped as a compact JWS. */
export const partsOf = (token: string): readonly [string, string, string] | undefined => {
  const parts = token.split(".")
  return parts.length === 3 && parts.every((part) => PART.test(part)) ? parts as [string, string, string] : undefined
}

/** A part decoded as a JSON object; undefined for anything else (array, string, bad JSON). */
export const jsonObject = (part: string): Record<string, unknown> | undefined => {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, "base64url").toString("utf8"))
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}
