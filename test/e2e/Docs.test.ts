// What the README and docs/ show must be what the code does, where a reader would copy it: the
// ticket the README shows is the kind the gateway issues, docker-compose.yml publishes the dev
// topology on loopback only, and SCALING.md sends readers to the bench report for figures
// instead of copying numbers that go stale.
import { readFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { parse } from "yaml"
import { type Gateway, startGateway } from "../support/gateway.ts"

const ROOT = resolve(import.meta.dirname, "../..")
const read = (path: string) => readFileSync(join(ROOT, path), "utf8")

describe("the README's ticket example", () => {
  let gateway: Gateway
  beforeAll(async () => {
    // No ticket key file: the default, a fresh HS256 secret, as `npm start` in dev mode.
    gateway = await startGateway({ TIDINGS_TICKET_KEY_FILE: "" })
  })
  afterAll(async () => {
    await gateway?.close()
  })

  it("starts as the header of a ticket the gateway issues by default", async () => {
    const shown = /\{"ticket":"(eyJ[A-Za-z0-9_-]+)\.\.\.","expiresIn":60\} 201/.exec(read("README.md"))
    expect(shown).not.toBeNull()
    const ticket = await gateway.ticket("patient", "pt_docs_000001")
    expect(ticket.startsWith(shown![1]!)).toBe(true)
    expect(JSON.parse(Buffer.from(ticket.split(".")[0]!, "base64url").toString()).alg).toBe("HS256")
    // protocol.md names the default the same way.
    expect(read("docs/protocol.md")).toMatch(/A ticket is a compact JWS signed with the gateway's ticket key: HS256/)
  })
})

describe("docker-compose.yml", () => {
  it("publishes every port on the host's loopback only (its nodes run the dev issuer)", () => {
    const compose = parse(read("docker-compose.yml"), { merge: true })
    const ports = Object.values(compose.services as Record<string, { ports?: Array<string> }>).flatMap((s) => s.ports ?? [])
    expect(ports.length).toBeGreaterThan(0)
    for (const port of ports) expect(port, port).toMatch(/^127\.0\.0\.1:\d+:\d+$/)
  })
})

describe("docs/SCALING.md", () => {
  it("quotes no per-delivery or per-session figure of its own: it names BENCHMARKS.md's rows", () => {
    const section = read("docs/SCALING.md").split("## What one node and one shard carry")[1]!.split("\n## ")[0]!
    expect(section).toContain("BENCHMARKS.md")
    expect(section).not.toMatch(/\d+(\.\d+)?\s*(µs|ms) (of server CPU|per)/)
  })
})
