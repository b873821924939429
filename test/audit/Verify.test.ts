// `tidings audit verify`: a trail as the sink writes it verifies; deleting, inserting,
// reordering or editing any single record, or cutting the tail, is detected and reported at
// the first bad record's seq. `tidings audit hash` gives the pseudonym the trail holds.
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import type { AuditEntry } from "../../src/domain/Audit.ts"
import * as Channel from "../../src/domain/Channel.ts"
import { main } from "../../src/cli.ts"
import { makeChain, pseudonymizer } from "../../src/interpreters/audit/Chain.ts"
import { verifier, type Verdict } from "../../src/interpreters/audit/Verify.ts"

const key = randomBytes(32)

/** A sealed trail of `n` records (the last one the seal), one JSON line each. */
const trail = (n: number, node = "node-1", startMs = 1_700_000_000_000): Array<string> => {
  const chain = makeChain(key, node)
  const lines: Array<string> = []
  for (let i = 1; i < n; i++) {
    const entry: AuditEntry = i % 2 === 0
      ? { event: "subscribe.allowed", subject: `pt_subject_${i % 7}`, channel: Channel.parse("patient:pt_subject_0001")!, result: "ok" }
      : { event: "ticket.issued", jti: `jti_${String(i).padStart(20, "0")}`, subject: "pt_subject_0001", result: "ok" }
    lines.push(JSON.stringify(chain(entry, startMs + i)))
  }
  lines.push(JSON.stringify(chain({ event: "audit.closed" }, startMs + n)))
  return lines
}

const check = (lines: ReadonlyArray<string>, open = false): Verdict => {
  const v = verifier(key)
  for (const [i, line] of lines.entries()) {
    const bad = v.line("audit.jsonl", i + 1, line)
    if (bad !== undefined) return bad
  }
  return v.end(open)
}

describe("audit verify", () => {
  it("accepts an untouched, sealed trail, and two chains (a restart) in a row", () => {
    expect(check(trail(50))).toEqual({ ok: true, records: 50, chains: 1, sealed: true, from: 1, unclean: [] })
    expect(check([...trail(20), ...trail(30)])).toEqual({ ok: true, records: 50, chains: 2, sealed: true, from: 1, unclean: [] })
  })

  it("detects a deleted record at its seq", () => {
    const lines = trail(50)
    lines.splice(19, 1) // seq 20 gone
    expect(check(lines)).toMatchObject({ ok: false, problem: "seq", seq: 20, line: 20 })
  })

  it("detects an inserted record", () => {
    const lines = trail(50)
    const forged = { ...JSON.parse(lines[9]!), event: "session.revoked" }
    lines.splice(10, 0, JSON.stringify(forged))
    expect(check(lines)).toMatchObject({ ok: false, seq: 11, line: 11 })
  })

  it("detects two records swapped", () => {
    const lines = trail(50)
    ;[lines[29], lines[30]] = [lines[30]!, lines[29]!]
    expect(check(lines)).toMatchObject({ ok: false, problem: "seq", seq: 30, line: 30 })
  })

  it("detects an edited field, even with seq and prev left intact", () => {
    const lines = trail(50)
    const record = JSON.parse(lines[24]!)
    lines[24] = JSON.stringify({ ...record, result: "refused" })
    expect(check(lines)).toMatchObject({ ok: false, problem: "mac", seq: 25, line: 25 })
  })

  it("detects an edit whose mac was recomputed without the key", () => {
    const lines = trail(10)
    const record = JSON.parse(lines[4]!)
    lines[4] = JSON.stringify({ ...record, result: "refused", mac: "f".repeat(64) })
    expect(check(lines)).toMatchObject({ ok: false, problem: "mac", seq: 5 })
  })

  it("computes the same mac as HMAC-SHA256 (createHmac)", async () => {
    const { createHmac } = await import("node:crypto")
    const { chainKey, macFor } = await import("../../src/interpreters/audit/Chain.ts")
    const k = chainKey(key)
    for (const body of ["{}", "{\"a\":\"é\"}", "x".repeat(1000)]) {
      expect(macFor(k)("0".repeat(64), body)).toBe(createHmac("sha256", k).update("0".repeat(64)).update(body).digest("hex"))
    }
  })

  it("keeps pseudonyms as HMAC-SHA256 under the derived subject key, remembered or not", async () => {
    const { createHmac } = await import("node:crypto")
    const { derive } = await import("../../src/interpreters/audit/Chain.ts")
    const pseudonym = pseudonymizer(key)
    for (const ref of ["pt_subject_0001", "cl_x", "pt_subject_0001"]) {
      expect(pseudonym(ref)).toBe(createHmac("sha256", derive(key, "tidings/audit/subject")).update(ref).digest("hex").slice(0, 32))
    }
  })

  it("detects a cut tail: no seal at the end, or before a restart", () => {
    const lines = trail(50)
    expect(check(lines.slice(0, 40))).toMatchObject({ ok: false, problem: "missing tail", seq: 41 })
    expect(check([...lines.slice(0, 40), ...trail(5)])).toMatchObject({ ok: false, problem: "missing tail", seq: 41 })
    // A log still being written has no seal yet: --open accepts that.
    expect(check(lines.slice(0, 40), true)).toMatchObject({ ok: true, records: 40, sealed: false })
  })

  it("checks a trail whose older files were archived only when told it is partial, and still checks its first mac", () => {
    const lines = trail(50).slice(20)
    expect(check(lines)).toMatchObject({ ok: false, problem: "seq", seq: 1 })
    const partial = (ls: ReadonlyArray<string>) => {
      const v = verifier(key, { partial: true })
      for (const [i, line] of ls.entries()) {
        const bad = v.line("audit.jsonl", i + 1, line)
        if (bad !== undefined) return bad
      }
      return v.end(false)
    }
    expect(partial(lines)).toEqual({ ok: true, records: 30, chains: 1, sealed: true, from: 21, unclean: [] })
    const edited = [...lines]
    edited[0] = JSON.stringify({ ...JSON.parse(edited[0]!), result: "refused" })
    expect(partial(edited)).toMatchObject({ ok: false, problem: "mac", seq: 21 })
  })

  it("names the restarts that followed an unsealed end, without calling the chain broken", () => {
    const chain = makeChain(key, "node-1")
    const lines = [
      JSON.stringify(chain({ event: "audit.opened", cause: "new" }, 1)),
      JSON.stringify(chain({ event: "ticket.issued", jti: "j1", result: "ok" }, 2)),
      // The node crashed here: no seal; the next start continues the chain and says so.
      JSON.stringify(chain({ event: "audit.opened", cause: "unsealed" }, 3)),
      JSON.stringify(chain({ event: "audit.closed" }, 4))
    ]
    expect(check(lines)).toEqual({ ok: true, records: 4, chains: 1, sealed: true, from: 1, unclean: [3] })
  })

  it("refuses a record spliced in from another chain under the same key (an earlier run of the node), though its own mac holds", () => {
    // Same key, same node, same seqs: only the link to the previous record tells them apart.
    const earlier = trail(50, "node-1", 1_600_000_000_000)
    const current = trail(50)
    const later = makeChain(key, "node-1")
    const other = Array.from({ length: 50 }, (_, i) =>
      JSON.stringify(later({ event: "session.revoked", subject: "pt_subject_0002", result: "ok" }, 1_800_000_000_000 + i)))
    for (const donor of [earlier, other]) {
      const lines = [...current]
      lines[24] = donor[24]!
      expect(JSON.parse(lines[24]!).seq).toBe(25)
      expect(check(lines)).toMatchObject({ ok: false, seq: 25, line: 25 })
    }
    // The control: each chain on its own verifies.
    expect(check(current)).toMatchObject({ ok: true, records: 50 })
    expect(check(earlier)).toMatchObject({ ok: true, records: 50 })
  })

  it("accepts records carrying a peer pseudonym and a refusal count, and detects an edited count", () => {
    const chain = makeChain(key, "node-1")
    const lines = [
      JSON.stringify(chain({ event: "audit.opened", cause: "new" }, 1)),
      JSON.stringify(chain({ event: "ws.rejected", result: "refused", cause: "origin", peer: "203.0.113.7", count: 3596 }, 2)),
      JSON.stringify(chain({ event: "audit.closed" }, 3))
    ]
    const record = JSON.parse(lines[1]!)
    expect(record.count).toBe(3596)
    // Keyed under its own derived key: not the pseudonym the same string gets as a ref.
    expect(record.peer).toBe(pseudonymizer(key, "peer")("203.0.113.7"))
    expect(record.peer).not.toBe(pseudonymizer(key)("203.0.113.7"))
    expect(lines.join("\n")).not.toContain("203.0.113.7")
    expect(check(lines)).toMatchObject({ ok: true, records: 3 })
    lines[1] = JSON.stringify({ ...record, count: 1 })
    expect(check(lines)).toMatchObject({ ok: false, problem: "mac", seq: 2 })
  })

  it("refuses a line that is not JSON", () => {
    const lines = trail(10)
    lines[3] = "{not json"
    expect(check(lines)).toMatchObject({ ok: false, problem: "not json", line: 4 })
  })
})

describe("the tidings CLI", () => {
  const dir = mkdtempSync(join(tmpdir(), "tidings-audit-cli-"))
  const keyFile = join(dir, "audit.key")
  writeFileSync(keyFile, key)
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it("exits 0 on a good trail and 1 on a tampered one, naming the seq", async () => {
    const good = join(dir, "good.jsonl")
    writeFileSync(good, `${trail(30).join("\n")}\n`)
    const bad = join(dir, "bad.jsonl")
    const lines = trail(30)
    lines.splice(14, 1)
    writeFileSync(bad, `${lines.join("\n")}\n`)
    expect(await main(["audit", "verify", "--key", keyFile, good])).toBe(0)
    expect(await main(["audit", "verify", "--key", keyFile, bad])).toBe(1)
    expect(await main(["audit", "verify", "--key", keyFile])).toBe(64)
  })

  it("prints the pseudonym a trail holds for a ref", async () => {
    const written: Array<string> = []
    const write = process.stdout.write.bind(process.stdout)
    process.stdout.write = ((chunk: string) => (written.push(String(chunk)), true)) as typeof process.stdout.write
    try {
      expect(await main(["audit", "hash", "--key", keyFile, "pt_subject_0001"])).toBe(0)
    } finally {
      process.stdout.write = write
    }
    expect(written.join("").trim()).toBe(pseudonymizer(key)("pt_subject_0001"))
    expect(trail(5).some((line) => JSON.parse(line).subject === written.join("").trim())).toBe(true)
  })

  it("prints the pseudonym a trail holds for a refused caller's address with --peer", async () => {
    const written: Array<string> = []
    const write = process.stdout.write.bind(process.stdout)
    process.stdout.write = ((chunk: string) => (written.push(String(chunk)), true)) as typeof process.stdout.write
    try {
      expect(await main(["audit", "hash", "--key", keyFile, "--peer", "203.0.113.7"])).toBe(0)
    } finally {
      process.stdout.write = write
    }
    const record = makeChain(key, "node-1")({ event: "ws.rejected", result: "refused", cause: "origin", peer: "203.0.113.7", count: 2 }, 1)
    expect(written.join("").trim()).toBe(record.peer)
  })
})
