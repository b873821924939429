// The client follows the gateway's close table (src/domain/Close.ts) row by row: retry with
// backoff, reauthenticate with a new ticket (twice in a row at most), or stop; idle logoff
// waits for the user; refused upgrades and refused tickets end in a report, not a loop.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest"
import { CloseTable, type CloseRow } from "../../src/domain/Close.ts"
import { TicketError } from "../../client/src/index.ts"
import { CAP_MS, SLOW_CAP_MS } from "../../client/src/backoff.ts"
import { HANDSHAKE_REFUSAL_MS } from "../../client/src/link.ts"
import { start } from "./fake.ts"

beforeEach(() => void vi.useFakeTimers())
afterEach(() => void vi.useRealTimers())

const rows = Object.values(CloseTable) as Array<CloseRow>

describe("a close after welcome", () => {
  it.each(rows.filter((row) => row.action === "retry"))("$code $reason: reconnects after a backoff, with a new ticket", async (row) => {
    const { client, socket, sockets, getTicket } = await start()
    socket().accept()
    socket().serverClose(row.code)
    expect(client.state).toBe("reconnecting")
    await vi.advanceTimersByTimeAsync(row.slow === true ? SLOW_CAP_MS : CAP_MS)
    expect(sockets()).toBe(2)
    expect(getTicket).toHaveBeenCalledTimes(2)
  })

  it.each(rows.filter((row) => row.action === "reauthenticate"))("$code $reason: asks for a new ticket and reconnects at once", async (row) => {
    const { client, socket, sockets, getTicket, states } = await start()
    socket().accept()
    socket().serverClose(row.code)
    await vi.advanceTimersByTimeAsync(0)
    expect(states.at(-1)).toEqual({ state: "reconnecting", detail: { code: row.code, action: "reauthenticate" } })
    expect(getTicket).toHaveBeenCalledTimes(2)
    expect(sockets()).toBe(2)
    expect(socket().protocols).toEqual(["tidings.v1", "ticket.ticket-2"])
    socket().accept()
    expect(client.state).toBe("open")
  })

  it.each(rows.filter((row) => row.action === "stop"))("$code $reason: stops and never reconnects by itself", async (row) => {
    const { client, socket, sockets, states } = await start()
    socket().accept()
    socket().serverClose(row.code)
    await vi.advanceTimersByTimeAsync(60 * 60_000)
    expect(client.state).toBe("stopped")
    expect(states.at(-1)!.detail).toEqual({ code: row.code, action: "stop" })
    expect(sockets()).toBe(1)
  })

  it("a code outside the table (another server, a proxy) is retried", async () => {
    const { client, socket, sockets } = await start()
    socket().accept()
    socket().serverClose(4999)
    expect(client.state).toBe("reconnecting")
    await vi.advanceTimersByTimeAsync(CAP_MS)
    expect(sockets()).toBe(2)
  })
})

describe("the client's own limits", () => {
  it("reauthenticates twice in a row, then stops and reports the third refusal", async () => {
    const { client, socket, sockets, states } = await start()
    for (let i = 0; i < 3; i++) {
      socket().open()
      socket().serverClose(4401)
      await vi.advanceTimersByTimeAsync(0)
    }
    expect(client.state).toBe("stopped")
    expect(states.at(-1)!.detail).toEqual({ code: 4401, action: "stop", cause: "reauthenticate_limit" })
    expect(sockets()).toBe(3)
  })

  it("a welcome in between starts the count again", async () => {
    const { client, socket } = await start()
    for (let i = 0; i < 4; i++) {
      socket().accept()
      socket().serverClose(4408)
      await vi.advanceTimersByTimeAsync(0)
    }
    expect(client.state).toBe("reconnecting")
  })

  it("idle logoff (4410) stops until markActive(), which connects again", async () => {
    const { client, socket, sockets } = await start()
    socket().accept()
    socket().serverClose(4410)
    await vi.advanceTimersByTimeAsync(60 * 60_000)
    expect(sockets()).toBe(1)
    client.markActive()
    expect(client.state).toBe("connecting")
    await vi.advanceTimersByTimeAsync(0)
    expect(sockets()).toBe(2)
    socket().accept()
    expect(client.state).toBe("open")
  })

  it("markActive() does not restart a client stopped for another reason (4409 revoked)", async () => {
    const { client, socket, sockets } = await start()
    socket().accept()
    socket().serverClose(4409)
    client.markActive()
    await vi.advanceTimersByTimeAsync(60_000)
    expect(client.state).toBe("stopped")
    expect(sockets()).toBe(1)
  })

  it("three upgrades refused in a row, ticket in hand (an Origin not allowed), stop and report instead of retrying forever", async () => {
    const { client, socket, sockets, states } = await start()
    for (let i = 0; i < 3; i++) {
      // Refused as soon as it is dialed (never opened), as a 403 is.
      const dialed = sockets()
      socket().serverClose(1006)
      if (i < 2) while (sockets() === dialed) await vi.advanceTimersByTimeAsync(10)
    }
    await vi.advanceTimersByTimeAsync(CAP_MS)
    expect(client.state).toBe("stopped")
    expect(states.at(-1)!.detail).toEqual({ code: 1006, action: "stop", cause: "handshake" })
    await vi.advanceTimersByTimeAsync(60 * 60_000)
    expect(sockets()).toBe(3)
  })

  it("keeps retrying upgrades that fail slowly (an overloaded or restarting gateway), however many in a row", async () => {
    const { client, socket, sockets } = await start()
    for (let i = 0; i < 5; i++) {
      await vi.advanceTimersByTimeAsync(HANDSHAKE_REFUSAL_MS + 1)
      socket().serverClose(1006) // never opened, after a long wait
      await vi.advanceTimersByTimeAsync(CAP_MS)
    }
    expect(client.state).not.toBe("stopped")
    expect(sockets()).toBe(6)
  })

  it("a refused ticket request follows the ticket table: 403 stops, 429 and network failures retry", async () => {
    const refused = await start({ getTicket: () => Promise.reject(new TicketError(403)) })
    expect(refused.client.state).toBe("stopped")
    expect(refused.states.at(-1)!.detail).toEqual({ code: 0, action: "stop", cause: "ticket" })
    refused.client.close()

    let calls = 0
    const flaky = await start({ getTicket: () => (++calls < 3 ? Promise.reject(new TypeError("fetch failed")) : Promise.resolve("t")) })
    expect(flaky.client.state).toBe("reconnecting")
    expect(flaky.states.at(-1)!.detail).toEqual({ code: 0, action: "retry", cause: "ticket" })
    await vi.advanceTimersByTimeAsync(2 * CAP_MS)
    expect(calls).toBe(3)
    expect(flaky.sockets()).toBe(1)
  })

  it("close() closes the socket with 1000 and stops for good", async () => {
    const { client, socket, sockets } = await start()
    socket().accept()
    client.close()
    expect(socket().closedWith).toBe(1000)
    expect(client.state).toBe("stopped")
    client.markActive()
    await vi.advanceTimersByTimeAsync(60 * 60_000)
    expect(sockets()).toBe(1)
  })
})
