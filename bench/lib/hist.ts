// A log-linear histogram of non-negative integers (microseconds here): exact below 128, then
// 64 sub-buckets per power of two (under 1.6 % relative error), like HdrHistogram with two
// significant digits. Fixed size, mergeable, and small when serialized (sparse pairs).

const SUB_BITS = 7
const EXACT = 1 << SUB_BITS // 128 values kept exactly
const HALF = EXACT >> 1 // 64 sub-buckets per power of two above that
const POWERS = 48 // up to 2^54 µs: anything a benchmark can produce
const SIZE = EXACT + HALF * POWERS

const indexOf = (value: number): number => {
  const v = value <= 0 ? 0 : Math.floor(value)
  if (v < EXACT) return v
  const msb = Math.floor(Math.log2(v))
  const shift = msb - (SUB_BITS - 1)
  const mantissa = Math.floor(v / 2 ** shift) // in [64, 128)
  return Math.min(SIZE - 1, EXACT + (shift - 1) * HALF + (mantissa - HALF))
}

/** The middle of a bucket: what a percentile reports. */
const valueOf = (index: number): number => {
  if (index < EXACT) return index
  const shift = Math.floor((index - EXACT) / HALF) + 1
  const mantissa = ((index - EXACT) % HALF) + HALF
  return mantissa * 2 ** shift + (2 ** shift - 1) / 2
}

export interface HistogramJson {
  readonly count: number
  readonly min: number
  readonly max: number
  readonly sum: number
  /** [bucket index, count] for the non-empty buckets. */
  readonly buckets: ReadonlyArray<readonly [number, number]>
}

export class Histogram {
  counts = new Float64Array(SIZE)
  count = 0
  min = Number.POSITIVE_INFINITY
  max = 0
  sum = 0

  record(value: number): void {
    const v = value < 0 ? 0 : value
    this.counts[indexOf(v)]! += 1
    this.count += 1
    this.sum += v
    if (v < this.min) this.min = v
    if (v > this.max) this.max = v
  }

  merge(other: Histogram | HistogramJson): this {
    const json = other instanceof Histogram ? other.toJSON() : other
    for (const [index, n] of json.buckets) this.counts[index]! += n
    this.count += json.count
    this.sum += json.sum
    if (json.count > 0) {
      this.min = Math.min(this.min, json.min)
      this.max = Math.max(this.max, json.max)
    }
    return this
  }

  /** The value at or below which `p` percent of the recorded values lie (0 when empty). */
  percentile(p: number): number {
    if (this.count === 0) return 0
    if (p >= 100) return this.max
    const rank = Math.max(1, Math.ceil((p / 100) * this.count))
    let seen = 0
    for (let i = 0; i < SIZE; i++) {
      seen += this.counts[i]!
      if (seen >= rank) return Math.min(this.max, Math.max(this.min, valueOf(i)))
    }
    return this.max
  }

  mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count
  }

  reset(): void {
    this.counts.fill(0)
    this.count = 0
    this.min = Number.POSITIVE_INFINITY
    this.max = 0
    this.sum = 0
  }

  toJSON(): HistogramJson {
    const buckets: Array<readonly [number, number]> = []
    for (let i = 0; i < SIZE; i++) if (this.counts[i]! > 0) buckets.push([i, this.counts[i]!])
    return { count: this.count, min: this.count === 0 ? 0 : this.min, max: this.max, sum: this.sum, buckets }
  }

  static from(json: HistogramJson): Histogram {
    return new Histogram().merge(json)
  }
}

/** The usual summary, in milliseconds, of a histogram of microseconds. */
export const summaryMs = (h: Histogram) => ({
  count: h.count,
  p50: h.percentile(50) / 1000,
  p90: h.percentile(90) / 1000,
  p99: h.percentile(99) / 1000,
  max: h.max / 1000,
  mean: h.mean() / 1000
})
export type SummaryMs = ReturnType<typeof summaryMs>
