// Reconnect delays: exponential with full jitter, from 0.5 s up to a 30 s cap, and from 5 s
// up to 120 s after a rate-limited close (4429). The client draws them from Math.random.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest"
import { BASE_MS, CAP_MS, ceilingMs, delayMs, SLOW_BASE_MS, SLOW_CAP_MS } from "../../client/src/backoff.ts"
import { start } from "./fake.ts"

describe("backoff", () => {
  it("doubles its ceiling per attempt from 0.5 s and never passes 30 s", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 100].map((n) => ceilingMs(n, false))).toEqual(
      [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
    )
    expect(BASE_MS).toBe(500)
    expect(CAP_MS).toBe(30_000)
  })

  it("is slower after a rate limit: from 5 s, capped at 120 s", () => {
    expect([0, 1, 2, 3, 4, 5].map((n) => ceilingMs(n, true))).toEqual([5000, 10000, 20000, 40000, 80000, 120000])
    expect([SLOW_BASE_MS, SLOW_CAP_MS]).toEqual([5_000, 120_000])
  })

  it("is full jitter: anywhere from 0 up to (not including) the ceiling", () => {
    expect(delayMs(3, false, () => 0)).toBe(0)
    expect(delayMs(3, false, () => 0.5)).toBe(2000)
    expect(delayMs(3, false, () => 0.999999)).toBe(3999)
    const draws = Array.from({ length: 2000 }, () => delayMs(10, false))
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(0)
    expect(Math.max(...draws)).toBeLessThan(CAP_MS)
    // Spread over the whole range, not bunched at the ceiling as a fixed exponential would be.
    expect(draws.filter((d) => d < CAP_MS / 2).length).toBeGreaterThan(800)
    expect(draws.filter((d) => d >= CAP_MS / 2).length).toBeGreaterThan(800)
  })
})

describe("the client's reconnect waits", () => {
  beforeEach(() => void vi.useFakeTimers())
  afterEach(() => {
    vi.restoreAllMocks()
    vi.useRealTimers()
  })

  it("wait the drawn delay for the attempt: no socket a millisecond early", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5)
    const { socket, sockets } = await start()
    socket().accept()
    const waits: Array<number> = []
    for (let attempt = 0; attempt < 4; attempt++) {
      const before = sockets()
      socket().serverClose(1001)
      const wait = ceilingMs(attempt, false) / 2
      await vi.advanceTimersByTimeAsync(wait - 1)
      expect(sockets()).toBe(before)
      await vi.advanceTimersByTimeAsync(1)
      expect(sockets()).toBe(before + 1)
      socket().open() // opened but closed before welcome: the attempt count keeps growing
      waits.push(wait)
    }
    expect(waits).toEqual([250, 500, 1000, 2000])
  })

  it("start again from 0.5 s after a welcome", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.999)
    const { socket, sockets } = await start()
    for (let i = 0; i < 5; i++) {
      socket().accept()
      socket().serverClose(1011)
      await vi.advanceTimersByTimeAsync(499)
      expect(sockets()).toBe(i + 2)
    }
  })

  it("after 4429 wait the slow ceiling's share", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5)
    const { socket, sockets } = await start()
    socket().accept()
    socket().serverClose(4429)
    await vi.advanceTimersByTimeAsync(2499)
    expect(sockets()).toBe(1)
    await vi.advanceTimersByTimeAsync(1)
    expect(sockets()).toBe(2)
  })
})
