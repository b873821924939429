// The outbound window's rules on their own, fast: a full window refuses, acknowledged frames
// free it, the byte limit holds, a ping goes out every ACK_EVERY_FRAMES frames, and a pong
// cannot acknowledge what was never sent. (test/e2e/Delivery.test.ts keeps the end-to-end run.)
import { describe, expect, it } from "vitest"
import { ACK_EVERY_FRAMES } from "../../src/domain/Limits.ts"
import * as Window from "../../src/server/Window.ts"

const limits: Window.WindowLimits = { frames: 4 * ACK_EVERY_FRAMES, bytes: 1_000 }
const fresh = (): Window.WindowState => ({ sent: 0, acked: 0, pingedAt: 0 })

/** Sends frames while the window admits them; the pings that went out, by payload. */
const sendUntilRefused = (state: Window.WindowState, buffered = 0) => {
  const pings: Array<string> = []
  while (Window.admits(state, limits, buffered)) {
    if (Window.recordSent(state)) pings.push(Window.pingPayload(state))
  }
  return pings
}

describe("the outbound window", () => {
  it("refuses a frame once `frames` are unacknowledged", () => {
    const state = fresh()
    sendUntilRefused(state)
    expect(state.sent).toBe(limits.frames)
    expect(Window.admits(state, limits, 0)).toBe(false)
  })

  it("admits again as many frames as a pong acknowledges", () => {
    const state = fresh()
    const pings = sendUntilRefused(state)
    Window.acknowledge(state, pings[0]!)
    expect(state.acked).toBe(ACK_EVERY_FRAMES)
    let more = 0
    while (Window.admits(state, limits, 0)) {
      Window.recordSent(state)
      more += 1
    }
    expect(more).toBe(ACK_EVERY_FRAMES)
  })

  it("refuses while the socket holds more than `bytes`, whatever the frame count", () => {
    const state = fresh()
    expect(Window.admits(state, limits, limits.bytes)).toBe(true)
    expect(Window.admits(state, limits, limits.bytes + 1)).toBe(false)
  })

  it("asks for an acknowledgement every ACK_EVERY_FRAMES frames, numbered with the frames sent", () => {
    const pings = sendUntilRefused(fresh())
    expect(pings).toEqual([1, 2, 3, 4].map((n) => String(n * ACK_EVERY_FRAMES)))
  })

  it("ignores pongs that claim more than was sent, go backwards, or are not numbers", () => {
    const state = fresh()
    for (let i = 0; i < 10; i++) Window.recordSent(state)
    for (const lie of ["11", "1e3", "-1", "", "ten", "4.5"]) Window.acknowledge(state, lie)
    expect(state.acked).toBe(0)
    Window.acknowledge(state, "7")
    Window.acknowledge(state, "3")
    expect(state.acked).toBe(7)
  })
})
