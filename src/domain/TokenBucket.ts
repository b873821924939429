// A token bucket as a pure step function: `limit` tokens, refilled continuously over
// `windowMs`. Used per connection inside a session, and by the memory rate limiter.

export interface Bucket {
  readonly tokens: number
  readonly updatedAt: number
}

export interface Rule {
  readonly limit: number
  readonly windowMs: number
}

export type Taken =
  | { readonly ok: true; readonly bucket: Bucket }
  | { readonly ok: false; readonly bucket: Bucket; readonly retryAfterMs: number }

export const full = (rule: Rule, now: number): Bucket => ({ tokens: rule.limit, updatedAt: now })

export const take = (bucket: Bucket, rule: Rule, now: number): Taken => {
  const refillMs = rule.windowMs / rule.limit
  const tokens = Math.min(rule.limit, bucket.tokens + Math.max(0, now - bucket.updatedAt) / refillMs)
  if (tokens >= 1) return { ok: true, bucket: { tokens: tokens - 1, updatedAt: now } }
  return { ok: false, bucket: { tokens, updatedAt: now }, retryAfterMs: Math.ceil((1 - tokens) * refillMs) }
}

/** Whether an untouched bucket would be full by now (and can be forgotten). */
export const isFull = (bucket: Bucket, rule: Rule, now: number): boolean =>
  bucket.tokens + Math.max(0, now - bucket.updatedAt) / (rule.windowMs / rule.limit) >= rule.limit
