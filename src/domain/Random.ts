// Random bytes from the platform's CSPRNG (Web Crypto: no `node:*`, so every layer may use it),
// drawn from a pool refilled 4 KiB at a time. One getRandomValues call costs about the same
// for 12 bytes as for 4 KiB (~4 µs on our VMs), and a publish asked for three.
// Every byte is handed out once, as a copy: a caller never shares memory with the pool.

const POOL_BYTES = 4096
const pool = new Uint8Array(POOL_BYTES)
let used = POOL_BYTES

/** `n` fresh random bytes (n ≤ 4096), never handed out before. */
export const bytes = (n: number): Uint8Array => {
  if (n > POOL_BYTES) return crypto.getRandomValues(new Uint8Array(n))
  if (used + n > POOL_BYTES) {
    crypto.getRandomValues(pool)
    used = 0
  }
  const out = pool.slice(used, used + n)
  // Spent bytes are zeroed, so a copy of the pool (a heap dump) does not hold what went out.
  pool.fill(0, used, used + n)
  used += n
  return out
}
