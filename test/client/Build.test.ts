// The package as shipped: built by client/build.ts (as `npm run build:client` does), ESM
// within 6 KiB gzipped, no import of anything (zero runtime dependencies, no effect), a
// <script> build that defines the global `Tidings`, and types.
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { runInNewContext } from "node:vm"
import { gzipSync } from "node:zlib"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { buildClient, type Built } from "../../client/build.ts"

const BUDGET_BYTES = 6 * 1024
let dir: string
let built: Built

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tidings-client-"))
  built = await buildClient(dir)
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe("the built client", () => {
  it(`is at most ${BUDGET_BYTES} bytes minified and gzipped (ESM)`, () => {
    const size = gzipSync(readFileSync(built.esm), { level: 9 }).length
    console.log(`client bundle: ${size} bytes gzipped`)
    expect(size).toBeLessThanOrEqual(BUDGET_BYTES)
  })

  it("imports nothing: no runtime dependency, no effect", () => {
    const code = readFileSync(built.esm, "utf8")
    expect(code).not.toMatch(/\bimport\s*[\s{*("']/)
    expect(code).not.toMatch(/\brequire\(/)
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, "../../client/package.json"), "utf8"))
    expect(pkg.dependencies).toBeUndefined()
    expect(pkg.peerDependencies).toBeUndefined()
  })

  it("carries the gateway's close table, bundled rather than copied", () => {
    expect(readFileSync(built.esm, "utf8")).toContain("idle timeout")
  })

  it("exports createClient, watchActivity and TicketError from the ESM build", async () => {
    const mod = await import(built.esm)
    expect(Object.keys(mod).sort()).toEqual(["TicketError", "createClient", "watchActivity"])
  })

  it("defines the global Tidings from the <script> build", () => {
    const context: Record<string, any> = {}
    runInNewContext(readFileSync(built.iife, "utf8"), context)
    expect(typeof context.Tidings.createClient).toBe("function")
  })

  it("ships its types: the public ones and the declared values", () => {
    const dts = readFileSync(built.dts, "utf8")
    for (const name of ["createClient", "watchActivity", "TicketError", "ClientOptions", "Handlers", "ResetInfo", "StateDetail"]) {
      expect(dts).toContain(name)
    }
    expect(dts).not.toMatch(/^import /m)
  })
})
