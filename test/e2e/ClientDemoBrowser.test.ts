// The dev-mode demo page in Chromium, served by a real dev node (`node src/main.ts`): it loads
// with no console error and no CSP violation, fetches a dev token, subscribes with the client
// and lists an event published through the API.
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { chromiumSkipReason, hasChromium, launch } from "../support/browser.ts"
import { freePort } from "../support/net.ts"
import { https, listening, run, useProcesses } from "../support/process.ts"

useProcesses()

describe.skipIf(!hasChromium)(`the demo page in Chromium${hasChromium ? "" : ` (skipped: ${chromiumSkipReason})`}`, () => {
  it("loads with no console error and no CSP violation, and lists an event published through the API", async () => {
    const port = await freePort()
    const metrics = await freePort()
    const origin = `https://localhost:${port}`
    const node = run((d) => ({
      TIDINGS_LISTEN: `127.0.0.1:${port}`, TIDINGS_AUDIT_SINK: `file:${join(d, "audit")}`,
      TIDINGS_ALLOWED_ORIGINS: origin, TIDINGS_METRICS_LISTEN: `127.0.0.1:${metrics}`
    }))
    await listening(node)
    const ca = readFileSync(join(node.dir, ".data", "dev-cert.pem"), "utf8")
    const browser = await launch()
    try {
      const page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage()
      const problems: Array<string> = []
      page.on("console", (message) => message.type() === "error" && problems.push(`console: ${message.text()}`))
      page.on("pageerror", (error) => problems.push(`page: ${error.message}`))
      await page.addInitScript(
        "document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective))"
      )
      await page.goto(`${origin}/demo/?ref=pt_demo_000002`)
      // Function forms, not strings: the demo's CSP forbids eval, and Playwright's string forms eval.
      await page.waitForFunction(() => (globalThis as any).document.getElementById("state").textContent === "open", undefined, { timeout: 15_000 })
      // Subscribed once the client holds a position for the channel.
      await page.waitForFunction(
        () => ((globalThis as any).sessionStorage.getItem(`tidings:positions:wss://${(globalThis as any).location.host}/v1/ws`) ?? "").includes("patient:pt_demo_000002"),
        undefined,
        { timeout: 15_000 }
      )
      const service = JSON.parse((await https(port, ca, "POST", "/dev/token", { role: "service", ref: "svc_demo_00001" })).body).accessToken
      const published = await https(port, ca, "POST", "/v1/events", { channel: "patient:pt_demo_000002", kind: "appointment.updated", ref: "apt_demo_0001" }, service)
      expect(published.status).toBe(202)
      await page.waitForFunction(() => (globalThis as any).document.querySelectorAll("#events li").length === 1, undefined, { timeout: 15_000 })
      expect(await page.textContent("#events li")).toMatch(/^#1 appointment\.updated apt_demo_0001 at /)
      expect(await page.textContent("#log")).toContain("open")
      expect(problems).toEqual([])
    } finally {
      await browser.close()
    }
  })
})
