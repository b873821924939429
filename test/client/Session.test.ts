// Keeping a session without keeping an idle user logged on: `refresh` before welcome.expiresAt
// (a minute ahead, halfway for short sessions) on the same socket, and a `ping` only after
// markActive() was called since the last one, never on a timer of the client's own.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest"
import { FakeSocket, start } from "./fake.ts"

beforeEach(() => void vi.useFakeTimers())
afterEach(() => void vi.useRealTimers())

describe("refresh", () => {
  it("is sent a minute before the session ends, with a fresh ticket, on the same socket", async () => {
    const { socket, getTicket, sockets, client } = await start()
    socket().accept({ expiresInMs: 10 * 60_000 })
    client.markActive()
    await vi.advanceTimersByTimeAsync(9 * 60_000 - 1)
    expect(socket().sentOf("refresh")).toEqual([])
    await vi.advanceTimersByTimeAsync(1)
    expect(socket().sentOf("refresh")).toEqual([{ type: "refresh", id: expect.any(String), ticket: "ticket-2" }])
    expect(getTicket).toHaveBeenCalledTimes(2)
    expect(sockets()).toBe(1)
  })

  it("is sent halfway through a session shorter than two minutes", async () => {
    const { socket } = await start()
    socket().accept({ expiresInMs: 80_000 })
    await vi.advanceTimersByTimeAsync(39_999)
    expect(socket().sentOf("refresh")).toHaveLength(0)
    await vi.advanceTimersByTimeAsync(1)
    expect(socket().sentOf("refresh")).toHaveLength(1)
  })

  it("is scheduled again from the new end that `refreshed` announces", async () => {
    const { socket, client } = await start()
    socket().accept({ expiresInMs: 5 * 60_000, idleTimeoutS: 3600 })
    await vi.advanceTimersByTimeAsync(4 * 60_000)
    const [first] = socket().sentOf("refresh")
    socket().frame({ type: "refreshed", id: first.id, expiresAt: new Date(Date.now() + 10 * 60_000).toISOString() })
    client.markActive()
    await vi.advanceTimersByTimeAsync(9 * 60_000 - 1)
    expect(socket().sentOf("refresh")).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(1)
    expect(socket().sentOf("refresh")).toHaveLength(2)
  })

  it("is not sent for a user idle longer than the idle timeout: refreshing never stands in for activity", async () => {
    const { socket, getTicket } = await start()
    socket().accept({ expiresInMs: 30 * 60_000, idleTimeoutS: 900 })
    await vi.advanceTimersByTimeAsync(30 * 60_000)
    expect(socket().sentOf("refresh")).toEqual([])
    expect(getTicket).toHaveBeenCalledTimes(1)
  })
})

describe("ping", () => {
  it("is never sent without markActive(), however long the session stays open", async () => {
    const { socket } = await start()
    socket().accept({ expiresInMs: 12 * 3_600_000 })
    await vi.advanceTimersByTimeAsync(3 * 3_600_000)
    expect(socket().sentOf("ping")).toEqual([])
  })

  it("is sent once after markActive(), however many calls came in between", async () => {
    const { socket, client } = await start()
    socket().accept({ idleTimeoutS: 900 })
    await vi.advanceTimersByTimeAsync(60_000)
    for (let i = 0; i < 50; i++) client.markActive()
    await vi.advanceTimersByTimeAsync(0)
    expect(socket().sentOf("ping")).toEqual([{ type: "ping", id: expect.any(String) }])
    await vi.advanceTimersByTimeAsync(3_600_000)
    expect(socket().sentOf("ping")).toHaveLength(1)
  })

  it("comes at most once per tenth of the idle timeout (30 s at most), so activity reaches the gateway in time", async () => {
    const { socket, client } = await start()
    socket().accept({ idleTimeoutS: 60 }) // every 6 s at most; the session's start counts as the last one
    client.markActive()
    await vi.advanceTimersByTimeAsync(5_999)
    expect(socket().sentOf("ping")).toHaveLength(0)
    await vi.advanceTimersByTimeAsync(1)
    expect(socket().sentOf("ping")).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(1_000)
    client.markActive()
    await vi.advanceTimersByTimeAsync(4_999)
    expect(socket().sentOf("ping")).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(1)
    expect(socket().sentOf("ping")).toHaveLength(2)
  })

  it("is not sent before welcome: activity while connecting is not owed to the new session", async () => {
    const { socket, client } = await start()
    socket().open()
    client.markActive()
    await vi.advanceTimersByTimeAsync(60_000)
    socket().welcome()
    await vi.advanceTimersByTimeAsync(3_600_000)
    expect(FakeSocket.made.flatMap((s) => s.sentOf("ping"))).toEqual([])
  })
})
