// docs/alerts.yml, the Prometheus rules operators load: it parses, every rule has what
// Prometheus and the on-call need, every metric it names is one the gateway exports, every
// label value it matches on is one that metric can carry, and every runbook link lands on a
// section of docs/OPERATIONS.md. (promtool is not on this machine; this is the parse.)
import { readdirSync, readFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { Redis } from "ioredis"
import { parse } from "yaml"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Metrics from "../../src/programs/Metrics.ts"
import { type Gateway, startGateway } from "../support/gateway.ts"
import { freePort } from "../support/net.ts"
import { startRedis, type TestRedis, USERS } from "../support/redis.ts"
import { until } from "../support/wait.ts"
import { parseExposition, type Sample, valueOf } from "./exposition.ts"

const ROOT = resolve(import.meta.dirname, "../..")
const rules = parse(readFileSync(join(ROOT, "docs/alerts.yml"), "utf8")) as {
  groups: Array<{ name: string; rules: Array<Record<string, any>> }>
}
const all = rules.groups.flatMap((group) => group.rules)

/** Every metric name the sources define (a string literal `"tidings_…"`). */
const defined = (() => {
  const names = new Set<string>()
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (entry.name.endsWith(".ts")) {
        for (const [, name] of readFileSync(path, "utf8").matchAll(/"(tidings_[a-z_]+)"/g)) names.add(name!)
      }
    }
  }
  walk(join(ROOT, "src"))
  return names
})()

const HISTOGRAM_PART = /_(bucket|count|sum)$/
const SELECTOR = /\b(tidings_[a-z_]+)(?:\{([^}]*)\})?/g

describe("docs/alerts.yml", () => {
  it("parses into groups of rules, each with a unique name, an expression, a severity and a summary", () => {
    expect(rules.groups.length).toBeGreaterThanOrEqual(2)
    expect(all.length).toBeGreaterThanOrEqual(10)
    expect(new Set(all.map((rule) => rule.alert)).size).toBe(all.length)
    for (const rule of all) {
      expect(rule.alert, JSON.stringify(rule)).toMatch(/^Tidings[A-Z][A-Za-z]+$/)
      expect(typeof rule.expr).toBe("string")
      expect(["info", "warning", "critical"]).toContain(rule.labels?.severity)
      expect(typeof rule.annotations?.summary).toBe("string")
      if (rule.for !== undefined) expect(rule.for).toMatch(/^\d+[smh]$/)
      // Balanced brackets: the commonest way to break an expression.
      for (const [open, close] of [["(", ")"], ["{", "}"], ["[", "]"]] as const) {
        expect(rule.expr.split(open).length, `${rule.alert} ${open}${close}`).toBe(rule.expr.split(close).length)
      }
    }
  })

  it("covers what the issue asks to alert on", () => {
    const exprs = all.map((rule) => rule.expr as string).join("\n")
    expect(exprs).toContain("tidings_auth_failures_total")
    expect(exprs).toContain("tidings_origin_rejections_total")
    expect(exprs).toContain("tidings_revocations_total")
    expect(exprs).toContain("code=\"4508\"")
    expect(exprs).toContain("code=\"4503\"")
    expect(exprs).toContain("tidings_audit_sink_up")
  })

  it("names only metrics the gateway exports, with label values those metrics can carry", () => {
    for (const rule of all) {
      const selectors = [...(rule.expr as string).matchAll(SELECTOR)]
      expect(selectors.length, rule.alert).toBeGreaterThan(0)
      for (const [, name, matchers] of selectors) {
        const metric = name!.replace(HISTOGRAM_PART, "")
        expect(defined.has(metric) || defined.has(name!), `${rule.alert}: ${name}`).toBe(true)
        for (const [, label, value] of (matchers ?? "").matchAll(/(\w+)="([^"]*)"/g)) {
          const allowed = Metrics.FIXED_LABELS[metric]?.[label!]
          expect(allowed, `${rule.alert}: ${metric} has no fixed label ${label}`).toBeDefined()
          expect(allowed, `${rule.alert}: ${metric}{${label}="${value}"}`).toContain(value)
        }
      }
    }
  })

  it("links every alert to its section of docs/OPERATIONS.md", () => {
    const operations = readFileSync(join(ROOT, "docs/OPERATIONS.md"), "utf8")
    const anchors = new Set([...operations.matchAll(/^#{2,4} (.+)$/gm)].map(([, title]) =>
      title!.trim().toLowerCase().replace(/[^a-z0-9 -]/g, "").replaceAll(" ", "-")
    ))
    for (const rule of all) {
      expect(rule.annotations.runbook).toBe(`docs/OPERATIONS.md#${rule.alert.toLowerCase()}`)
      expect(anchors.has(rule.alert.toLowerCase()), rule.alert).toBe(true)
    }
  })
})

// Every alert, on a fresh real node (with a real redis-server, for tidings_redis_up): each series
// its expression reads is exported before its first event, and the event its runbook in
// docs/OPERATIONS.md describes moves it. A series that first appears at 1 is no increase to
// Prometheus, so its alert would never see the first event.
describe("each alert of docs/alerts.yml on a fresh node", () => {
  let redis: TestRedis
  let gateway: Gateway
  let metricsPort: number
  let first: ReadonlyArray<Sample>
  const scrape = async () => parseExposition(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text())
  const rule = (name: string) => all.find((r) => r.alert === name)!

  beforeAll(async () => {
    redis = await startRedis()
    metricsPort = await freePort()
    gateway = await startGateway({
      TIDINGS_REDIS_URL: redis.url,
      TIDINGS_METRICS_LISTEN: `127.0.0.1:${metricsPort}`,
      TIDINGS_OUTBOX_FRAMES: "128"
    })
    first = await scrape()
  }, 30_000)
  afterAll(async () => {
    await gateway?.close()
    await redis?.stop()
  })

  it("exports every series each alert reads before any event, once each, at 0 for the counters of events", () => {
    for (const r of all) {
      for (const [, name, matchers] of (r.expr as string).matchAll(SELECTOR)) {
        const labels = Object.fromEntries([...(matchers ?? "").matchAll(/(\w+)="([^"]*)"/g)].map(([, k, v]) => [k!, v!]))
        const found = first.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
        expect(found.length, `${r.alert}: ${name}${matchers === undefined ? "" : `{${matchers}}`}`).toBeGreaterThan(0)
      }
    }
    // The counters of the events the alerts wait for start at 0, one series per label value.
    expect(valueOf(first, "tidings_revocations_total")).toBe(0)
    expect(first.filter((s) => s.name === "tidings_audit_records_total" && s.labels.result === "dropped")).toEqual([
      { name: "tidings_audit_records_total", labels: { result: "dropped" }, value: 0 }
    ])
    expect(valueOf(first, "tidings_auth_failures_total", { credential: "ticket", cause: "used" })).toBe(0)
    for (const code of ["4403", "4503", "4508"]) expect(valueOf(first, "tidings_closes_total", { code })).toBe(0)
    expect(valueOf(first, "tidings_redis_up")).toBe(1)
    expect(valueOf(first, "tidings_control_channel_up")).toBe(1)
    expect(valueOf(first, "tidings_audit_sink_up")).toBe(1)
  })

  /** Runs the event and returns how far the series moved between a scrape before and one after. */
  const moved = async (name: string, labels: Record<string, string>, event: () => Promise<unknown>) => {
    const before = valueOf(await scrape(), name, labels)
    await event()
    let after = before
    await until(async () => (after = valueOf(await scrape(), name, labels)) !== before, 10_000, `${name} to move`)
    return after - before
  }
  const opened = async (ref: string) => {
    const connected = await gateway.connect({ ticket: await gateway.ticket("patient", ref) })
    if (connected.kind !== "open") throw new Error(`not open: ${JSON.stringify(connected)}`)
    return connected
  }

  it("TidingsAuthFailuresRepeated: a forged token moves tidings_auth_failures_total", async () => {
    expect(rule("TidingsAuthFailuresRepeated").expr).toContain("tidings_auth_failures_total")
    const token = await gateway.token("patient", "pt_alert_auth01")
    const forged = `${token.slice(0, token.lastIndexOf(".") + 1)}${Buffer.from("forged").toString("base64url")}`
    expect(await moved("tidings_auth_failures_total", { credential: "token", cause: "invalid" }, () =>
      gateway.http("POST", "/v1/tickets", { body: "{}", headers: { "content-type": "application/json", authorization: `Bearer ${forged}` } })
    )).toBe(1)
  })

  it("TidingsTicketReplays: a ticket shown again moves tidings_auth_failures_total{credential=ticket,cause=used}", async () => {
    const ticket = await gateway.ticket("patient", "pt_alert_replay")
    const once = await gateway.connect({ ticket })
    expect(once.kind).toBe("open")
    expect(await moved("tidings_auth_failures_total", { credential: "ticket", cause: "used" }, async () => {
      const again = await gateway.connect({ ticket })
      if (again.kind !== "open") throw new Error(`not open: ${JSON.stringify(again)}`)
      expect((await again.client.closed).code).toBe(4401)
    })).toBe(1)
  })

  it("TidingsOriginRejectionBurst: an upgrade from a foreign Origin moves tidings_origin_rejections_total", async () => {
    expect(await moved("tidings_origin_rejections_total", { reason: "origin" }, () =>
      gateway.connect({ ticket: "x", origin: "https://evil.example.test" }))).toBe(1)
  })

  it("TidingsRevocations and TidingsRevocationSpike: an admin revocation moves tidings_revocations_total", async () => {
    const admin = await gateway.token("admin", "ad_alert_000001")
    expect(await moved("tidings_revocations_total", {}, () =>
      gateway.http("POST", "/v1/admin/revocations", {
        body: JSON.stringify({ subject: "pt_alert_revoke" }),
        headers: { "content-type": "application/json", authorization: `Bearer ${admin}` }
      }))).toBe(1)
  })

  it("TidingsScrapingSuspected: denied subscriptions repeated until the socket closes move tidings_closes_total{code=4403}", async () => {
    const { client } = await opened("pt_alert_scrape")
    expect(await moved("tidings_closes_total", { code: "4403" }, async () => {
      for (let i = 0; i < 11; i++) client.send({ type: "subscribe", id: `d${i}`, channel: "patient:pt_someone_else" })
      expect((await client.closed).code).toBe(4403)
    })).toBe(1)
  })

  it("TidingsTooSlowRising: a subscriber that stops reading moves tidings_closes_total{code=4508}", async () => {
    const { client, ws } = await opened("pt_alert_stalls")
    client.send({ type: "subscribe", id: "s", channel: "patient:pt_alert_stalls" })
    await client.next((f) => f.type === "subscribed")
    ;(ws as unknown as { _socket: { pause(): void } })._socket.pause()
    expect(await moved("tidings_closes_total", { code: "4508" }, async () => {
      for (let i = 0; i < 400; i++) {
        await gateway.publish("svc_alerts", { channel: "patient:pt_alert_stalls", kind: "message.received", ref: `msg_${String(i).padStart(8, "0")}` })
      }
    })).toBe(1)
  })

  it("TidingsDeliveryLatencyHigh and TidingsHandshakeSlow: a session opening and an event delivered move their histograms", async () => {
    const before = await scrape()
    const { client } = await opened("pt_alert_deliver")
    client.send({ type: "subscribe", id: "s", channel: "patient:pt_alert_deliver" })
    await client.next((f) => f.type === "subscribed")
    await gateway.publish("svc_alerts", { channel: "patient:pt_alert_deliver", kind: "message.received", ref: "msg_deliver01" })
    await client.next((f) => f.type === "event")
    await until(async () => valueOf(await scrape(), "tidings_delivery_latency_ms_count") > valueOf(before, "tidings_delivery_latency_ms_count"), 5_000, "latency")
    const after = await scrape()
    expect(valueOf(after, "tidings_handshake_duration_ms_count") - valueOf(before, "tidings_handshake_duration_ms_count")).toBe(1)
    expect(valueOf(after, "tidings_delivery_latency_ms_bucket", { le: "+Inf" })).toBeGreaterThan(valueOf(before, "tidings_delivery_latency_ms_bucket", { le: "+Inf" }))
  })

  it("TidingsAuditSinkDown, TidingsAuditBacklog and TidingsTryAgainLaterRising: a failing sink drops tidings_audit_sink_up, holds records in tidings_audit_buffered and closes new sockets 4503", async () => {
    const ticket = await gateway.ticket("patient", "pt_alert_sinkdn")
    gateway.failAuditWrites(true)
    try {
      expect(await moved("tidings_audit_sink_up", {}, () =>
        gateway.publish("svc_alerts", { channel: "patient:pt_alert_sinkdn", kind: "message.received", ref: "msg_sinkdown1" }))).toBe(-1)
      expect(valueOf(await scrape(), "tidings_audit_buffered")).toBeGreaterThan(0)
      expect(await moved("tidings_closes_total", { code: "4503" }, async () => {
        // The upgrade is taken; the session then refuses to start while the audit sink fails.
        const refused = await gateway.connect({ ticket })
        if (refused.kind !== "open") throw new Error(`not open: ${JSON.stringify(refused)}`)
        expect((await refused.client.closed).code).toBe(4503)
      })).toBe(1)
    } finally {
      gateway.failAuditWrites(false)
    }
    await until(async () => valueOf(await scrape(), "tidings_audit_sink_up") === 1, 10_000, "sink up again")
    expect(valueOf(await scrape(), "tidings_audit_buffered")).toBe(0)
  })

  it("TidingsAuditRecordsDropped: records past the buffer's bound while the sink fails move tidings_audit_records_total{result=dropped}", async () => {
    expect(rule("TidingsAuditRecordsDropped").expr).toContain('tidings_audit_records_total{result="dropped"}')
    // A node of its own whose writer holds at most 4 records (the default is 1,000,000); the
    // metric registry is the process's, so this node's drop shows on the scrape above too.
    const small = await startGateway({ TIDINGS_METRICS_LISTEN: `127.0.0.1:${await freePort()}` }, { auditBufferLimit: 4 })
    try {
      small.failAuditWrites(true)
      expect(await moved("tidings_audit_records_total", { result: "dropped" }, async () => {
        // Each socket refused while the sink fails appends its ws.closed record, which is held.
        for (let i = 0; i < 6; i++) {
          const refused = await small.connect({ ticket: "not-a-ticket" })
          if (refused.kind !== "open") throw new Error(`not open: ${JSON.stringify(refused)}`)
          expect((await refused.client.closed).code).toBe(4503)
        }
      })).toBeGreaterThan(0)
    } finally {
      small.failAuditWrites(false)
      await small.close()
    }
  })

  it("TidingsControlChannelDeaf: a node refused the control channel moves tidings_control_channel_up to 0, and back", async () => {
    expect(rule("TidingsControlChannelDeaf").expr).toContain("tidings_control_channel_up")
    const admin = new Redis(redis.adminUrl)
    try {
      // Commands still answer (tidings_redis_up stays 1); only pub/sub is taken away and cut.
      await admin.call("ACL", "SETUSER", USERS.gateway.name, "resetchannels")
      expect(await moved("tidings_control_channel_up", {}, () => admin.call("CLIENT", "KILL", "TYPE", "pubsub"))).toBe(-1)
      expect(valueOf(await scrape(), "tidings_redis_up")).toBe(1)
    } finally {
      await admin.call("ACL", "SETUSER", USERS.gateway.name, "&tdg:*")
      admin.disconnect()
    }
    await until(async () => valueOf(await scrape(), "tidings_control_channel_up") === 1, 15_000, "control channel heard again")
  })

  it("TidingsRedisDown: Redis killed moves tidings_redis_up to 0", async () => {
    expect(await moved("tidings_redis_up", {}, () => redis.kill())).toBe(-1)
  })
})
