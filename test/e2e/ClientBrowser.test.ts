// @tidings/client in real Chromium (the IIFE build, as a <script> tag loads it) against real
// gateway nodes: receive; resume across a node restart on Redis; a flush becomes onReset;
// revocation and idle logoff stop it; three tabs share one socket and hand it over without
// losing an event; a page on an Origin the gateway refuses reports it instead of retrying.
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { request } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Browser } from "playwright-core"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { buildClient } from "../../client/build.ts"
import { chromiumSkipReason, hasChromium, launch, newContext, openTab, seen, servePages, waitSeen } from "../support/browser.ts"
import { type Gateway, startGateway } from "../support/gateway.ts"
import { freePort } from "../support/net.ts"
import { https, restartablePair, useProcesses } from "../support/process.ts"
import { startRedis, useRedis } from "../support/redis.ts"
import { until } from "../support/wait.ts"

useProcesses()

const PATIENT = "pt_browser_00001"
const CHANNEL = `patient:${PATIENT}`
let browser: Browser
let dir: string
let pages: Awaited<ReturnType<typeof servePages>>
/** The page's origin, allowed on every gateway these tests start. */
let ORIGIN: string
const gateways: Array<Gateway> = []

beforeAll(async () => {
  if (!hasChromium) return
  dir = mkdtempSync(join(tmpdir(), "tidings-browser-"))
  pages = await servePages(readFileSync((await buildClient(dir)).iife, "utf8"))
  ORIGIN = pages.origin
  browser = await launch()
})
afterAll(async () => {
  await browser?.close()
  await pages?.close()
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})
afterEach(async () => {
  for (const context of browser?.contexts() ?? []) await context.close()
  for (const gateway of gateways.splice(0)) await gateway.close()
})

const gateway = async (env: Record<string, string> = {}) => {
  const started = await startGateway({ TIDINGS_ALLOWED_ORIGINS: ORIGIN, ...env })
  gateways.push(started)
  return started
}
const publish = (g: Gateway, n: number) =>
  g.publish("svc_browser_tests", { channel: CHANNEL, kind: "appointment.updated", ref: `apt_${String(n).padStart(8, "0")}` })
const subscribed = (url: string) => `window.subscribed(${JSON.stringify(url)}, ${JSON.stringify(CHANNEL)})`

/** The connection gauge on the node's metrics listener. */
const connections = (metricsPort: number): Promise<number> =>
  new Promise((resolve, reject) => {
    request({ host: "127.0.0.1", port: metricsPort, path: "/metrics" }, (res) => {
      let body = ""
      res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk)).on("end", () => {
        const line = /^tidings_connections(?:\{[^}]*\})? (\d+)/m.exec(body)
        return line === null ? reject(new Error("no tidings_connections")) : resolve(Number(line[1]))
      })
    }).on("error", reject).end()
  })

describe.skipIf(!hasChromium)(`@tidings/client in Chromium${hasChromium ? "" : ` (skipped: ${chromiumSkipReason})`}`, () => {
  it("connects, subscribes and receives every event once, in order", async () => {
    const g = await gateway()
    const context = await newContext(browser)
    const page = await openTab(context, ORIGIN, () => g.ticket("patient", PATIENT), g.wsUrl, CHANNEL)
    await page.waitForFunction(subscribed(g.wsUrl), undefined, { timeout: 15_000 })
    for (let n = 1; n <= 3; n++) expect((await publish(g, n)).status).toBe(202)
    await waitSeen(page, "seen.events.length >= 3")
    const s = await seen(page)
    expect(s.events.map((e) => e.seq)).toEqual([1, 2, 3])
    expect(s.states.map((x) => x.state)).toEqual(["open"])
    expect(s.resets).toEqual([])
  })

  it("stops with 4409 on revocation", async () => {
    const g = await gateway()
    const page = await openTab(await newContext(browser), ORIGIN, () => g.ticket("patient", PATIENT), g.wsUrl, CHANNEL)
    await waitSeen(page, `seen.states.some((s) => s.state === "open")`)
    const admin = await g.token("admin", "adm_browser_001")
    const revoked = await g.http("POST", "/v1/admin/revocations", {
      body: JSON.stringify({ subject: PATIENT, role: "patient" }),
      headers: { "content-type": "application/json", authorization: `Bearer ${admin}` }
    })
    expect(revoked.status).toBe(202)
    await waitSeen(page, `seen.states.at(-1).state === "stopped"`)
    expect((await seen(page)).states.at(-1)).toEqual({ state: "stopped", detail: { code: 4409, action: "stop" } })
  })

  it("a page on an Origin the gateway does not allow reports the refusal instead of retrying forever", async () => {
    const g = await gateway()
    const elsewhere = pages.otherOrigin
    const page = await openTab(await newContext(browser), elsewhere, () => g.ticket("patient", PATIENT), g.wsUrl, CHANNEL)
    await waitSeen(page, `seen.states.some((s) => s.state === "stopped")`)
    const s = await seen(page)
    expect(s.states.at(-1)).toEqual({ state: "stopped", detail: { code: 1006, action: "stop", cause: "handshake" } })
    expect(s.states.filter((x) => x.state === "open")).toEqual([])
  })

  it("is logged off when idle (4410) and connects again only on markActive()", { timeout: 90_000 }, async () => {
    const g = await gateway({ TIDINGS_IDLE_TIMEOUT_S: "30" })
    const page = await openTab(await newContext(browser), ORIGIN, () => g.ticket("patient", PATIENT), g.wsUrl, CHANNEL)
    await waitSeen(page, `seen.states.some((s) => s.state === "open")`)
    await waitSeen(page, `seen.states.at(-1).state === "stopped"`, 45_000)
    expect((await seen(page)).states.at(-1)).toEqual({ state: "stopped", detail: { code: 4410, action: "stop" } })
    await page.evaluate(() => (globalThis as any).client.markActive())
    await waitSeen(page, `seen.states.at(-1).state === "open"`)
    expect((await seen(page)).states.map((x) => x.state)).toEqual(["open", "stopped", "connecting", "open"])
  })

  it("three tabs share one socket (the node counts 1 connection); closing the holder's tab hands over with no event lost", async () => {
    const metricsPort = await freePort()
    const g = await gateway({ TIDINGS_METRICS_LISTEN: `127.0.0.1:${metricsPort}` })
    const context = await newContext(browser)
    const ticket = () => g.ticket("patient", PATIENT)
    const holder = await openTab(context, ORIGIN, ticket, g.wsUrl, CHANNEL)
    await holder.waitForFunction(subscribed(g.wsUrl), undefined, { timeout: 15_000 })
    const others = [await openTab(context, ORIGIN, ticket, g.wsUrl, CHANNEL), await openTab(context, ORIGIN, ticket, g.wsUrl, CHANNEL)]
    for (const page of others) await page.waitForFunction(subscribed(g.wsUrl), undefined, { timeout: 15_000 })
    expect(await connections(metricsPort)).toBe(1)

    for (let n = 1; n <= 2; n++) expect((await publish(g, n)).status).toBe(202)
    for (const page of [holder, ...others]) await waitSeen(page, "seen.events.length >= 2")
    await holder.close()
    // Published while no tab holds a socket: the next holder asks from the tabs' positions.
    for (let n = 3; n <= 4; n++) expect((await publish(g, n)).status).toBe(202)
    for (const page of others) await waitSeen(page, "seen.events.length >= 4")
    expect((await publish(g, 5)).status).toBe(202)
    for (const page of others) await waitSeen(page, "seen.events.length >= 5")
    for (const page of others) expect((await seen(page)).events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5])
    await until(async () => (await connections(metricsPort)) === 1, 10_000, "one connection after the handover")
  })
})

describe.skipIf(!hasChromium)(`@tidings/client in Chromium, gateway on Redis${hasChromium ? "" : ` (skipped: ${chromiumSkipReason})`}`, () => {
  const handle = useRedis()

  it("turns a Redis flush into onReset, then delivers the new epoch's events", async () => {
    const g = await gateway({ TIDINGS_REDIS_URL: handle.redis.url })
    const page = await openTab(await newContext(browser), ORIGIN, () => g.ticket("patient", PATIENT), g.wsUrl, CHANNEL)
    await page.waitForFunction(subscribed(g.wsUrl), undefined, { timeout: 15_000 })
    expect((await publish(g, 1)).status).toBe(202)
    await waitSeen(page, "seen.events.length === 1")
    await handle.admin.flushall()
    expect((await publish(g, 2)).status).toBe(202)
    await waitSeen(page, "seen.resets.length === 1 && seen.events.length === 2")
    const s = await seen(page)
    expect(s.resets[0]!.epoch).not.toBe(s.events[0]!.epoch)
    expect(s.events[1]).toMatchObject({ epoch: s.resets[0]!.epoch, seq: s.resets[0]!.seq + 1 })
  })

  it("resumes across a node restart (SIGTERM, 1001) with every event published meanwhile, none twice", { timeout: 60_000 }, async () => {
    const redis = await startRedis({ persistent: true })
    try {
      const pair = await restartablePair(redis.url, "svc_browser_tests", { TIDINGS_ALLOWED_ORIGINS: ORIGIN })
      const { port, ca } = pair
      const publishVia = (n: number) => pair.publishVia(CHANNEL, n)
      const ticket = async () => {
        const token = JSON.parse((await https(port, ca(), "POST", "/dev/token", { role: "patient", ref: PATIENT })).body).accessToken
        return JSON.parse((await https(port, ca(), "POST", "/v1/tickets", {}, token)).body).ticket as string
      }
      const url = `wss://localhost:${port}/v1/ws`
      const page = await openTab(await newContext(browser), ORIGIN, ticket, url, CHANNEL)
      await page.waitForFunction(subscribed(url), undefined, { timeout: 15_000 })
      for (let n = 1; n <= 3; n++) expect(await publishVia(n)).toBe(202)
      await waitSeen(page, "seen.events.length === 3")

      await pair.stop()
      await waitSeen(page, "seen.states.some((s) => s.detail?.code === 1001)")
      for (let n = 4; n <= 6; n++) expect(await publishVia(n)).toBe(202)
      await pair.start()
      await waitSeen(page, "seen.events.length >= 6", 30_000)
      expect(await publishVia(7)).toBe(202)
      await waitSeen(page, "seen.events.length >= 7")
      const s = await seen(page)
      expect(s.events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7])
      expect(s.resets).toEqual([])
      await pair.close()
    } finally {
      await redis.stop()
    }
  })
})
