// Debian's Chromium driven by playwright-core for the client's browser suites: a fresh
// profile per launch, no background networking (the network here is closed), and the test
// page served over plain HTTP on loopback (http://localhost is a secure context, and a loopback
// page may reach the loopback gateway under Chromium's Local Network Access checks). Without a
// chromium binary the suites are skipped with a reason, except in CI, where they must run.
import { existsSync } from "node:fs"
import { createServer } from "node:http"
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core"
import { freePort } from "./net.ts"

export const CHROMIUM = process.env.TIDINGS_CHROMIUM ?? "/usr/bin/chromium"
export const hasChromium = existsSync(CHROMIUM)

if (!hasChromium && (process.env.CI !== undefined || process.env.TIDINGS_REQUIRE_ALL_SUITES !== undefined)) {
  throw new Error(`${CHROMIUM} is missing, and CI never skips the browser suites (.ci/run installs chromium)`)
}
export const chromiumSkipReason = `${CHROMIUM} is missing (apt-get install chromium to run the browser suites)`

export const launch = (): Promise<Browser> =>
  chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"
    ]
  })

/** A fresh context; the gateways' certificates are self-signed per test, and trusting them is not what these suites test. */
export const newContext = (browser: Browser): Promise<BrowserContext> => browser.newContext({ ignoreHTTPSErrors: true })

/**
 * Serves the test page and the IIFE build on a loopback port. `origin` (http://localhost:<port>)
 * is the one to allow on the gateway; `otherOrigin` (http://127.0.0.1:<port>), the same page,
 * is another origin the gateway can refuse.
 */
export const servePages = async (iife: string) => {
  const port = await freePort()
  const server = createServer((req, res) => {
    const script = req.url === "/tidings-client.iife.js"
    res.writeHead(200, { "content-type": script ? "text/javascript" : "text/html" })
    res.end(script ? iife : PAGE)
  })
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve))
  return {
    origin: `http://localhost:${port}`,
    otherOrigin: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

const PAGE = `<!doctype html><meta charset="utf-8"><title>client test</title>
<script src="/tidings-client.iife.js"></script>
<script>
  // What a test reads: everything the client reported, in order.
  window.seen = { events: [], resets: [], errors: [], states: [] }
  window.start = (url, channel) => {
    const client = Tidings.createClient({ url, getTicket: () => window.getTicket(), storage: sessionStorage })
    client.on("state", (state, detail) => seen.states.push({ state, detail: detail ?? null }))
    client.subscribe(channel, {
      onEvent: (e) => seen.events.push(e),
      onReset: (r) => seen.resets.push(r),
      onError: (c) => seen.errors.push(c),
    })
    window.client = client
  }
  window.subscribed = (url, channel) => (sessionStorage.getItem("tidings:positions:" + url) ?? "").includes(channel)
</script>`

export interface Seen {
  readonly events: Array<{ seq: number; epoch: string; channel: string; ref: string }>
  readonly resets: Array<{ seq: number; epoch: string; reason: string }>
  readonly errors: Array<string>
  readonly states: Array<{ state: string; detail: { code: number; action: string; cause?: string } | null }>
}

/** Opens the test page on `origin`, whose getTicket is answered by `ticket` (the app's backend), and starts a client. */
export const openTab = async (
  context: BrowserContext,
  origin: string,
  ticket: () => Promise<string>,
  url: string,
  channel: string
): Promise<Page> => {
  const page = await context.newPage()
  await page.exposeFunction("getTicket", ticket)
  await page.goto(`${origin}/`)
  await page.evaluate(([u, c]) => (globalThis as any).start(u, c), [url, channel] as const)
  return page
}

export const seen = (page: Page): Promise<Seen> => page.evaluate(() => (globalThis as any).seen)

/** Waits in the page until `predicate(seen)` holds (a function body over `seen`). */
export const waitSeen = (page: Page, predicate: string, timeout = 20_000) =>
  page.waitForFunction(`(() => { const seen = window.seen; return ${predicate} })()`, undefined, { timeout, polling: 50 })
