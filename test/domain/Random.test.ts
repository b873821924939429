// Specifies the pooled CSPRNG reader behind ids, epochs and nonces: every byte it hands out is
// fresh (never handed out twice, across refills of the pool), and what it hands out is a copy.
import { describe, expect, it } from "@effect/vitest"
import * as Random from "../../src/domain/Random.ts"

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")

describe("Random.bytes", () => {
  it("gives as many bytes as asked, for small and larger-than-pool requests", () => {
    expect(Random.bytes(12)).toHaveLength(12)
    expect(Random.bytes(5000)).toHaveLength(5000)
  })

  it("never hands out the same bytes twice, across many refills of the pool", () => {
    // 12-byte draws (a nonce's size): 4096 is not a multiple of 12, so each refill leaves a
    // remainder behind, which is never handed out.
    const seen = new Set<string>()
    for (let i = 0; i < 5_000; i++) seen.add(hex(Random.bytes(12)))
    expect(seen.size).toBe(5_000)
  })

  it("hands out copies: a draw does not change when the pool is refilled", () => {
    const first = Random.bytes(16)
    const kept = hex(first)
    for (let i = 0; i < 600; i++) Random.bytes(16)
    expect(hex(first)).toBe(kept)
  })

  it("is not all zeros (the spent pool is zeroed; a draw never reads spent bytes)", () => {
    for (let i = 0; i < 1_000; i++) expect(Random.bytes(8).some((b) => b !== 0)).toBe(true)
  })
})
