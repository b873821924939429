// docs/alerts.yml, the Prometheus rules operators load: it parses, every rule has what
// Prometheus and the on-call need, every metric it names is one the gateway exports, every
// label value it matches on is one that metric can carry, and every runbook link lands on a
// section of docs/OPERATIONS.md. (promtool is not on this machine; this is the parse.)
import { readdirSync, readFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { parse } from "yaml"
import { describe, expect, it } from "vitest"
import * as Metrics from "../../src/programs/Metrics.ts"

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
