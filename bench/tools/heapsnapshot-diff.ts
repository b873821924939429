// What a server holds per connection: two V8 heap snapshots (before and after opening N
// sessions, both after a full GC) compared by constructor / closure name, as count and self
// bytes per connection, largest first.
//   node bench/tools/heapsnapshot-diff.ts <base.heapsnapshot> <after.heapsnapshot> <N> [top=40]
import { readFileSync } from "node:fs"

const [baseFile, afterFile, nText, topText] = process.argv.slice(2)
if (baseFile === undefined || afterFile === undefined || nText === undefined) {
  process.stderr.write("usage: node bench/tools/heapsnapshot-diff.ts <base> <after> <connections> [top]\n")
  process.exit(64)
}

interface Snapshot {
  readonly snapshot: { readonly meta: { readonly node_fields: Array<string>; readonly node_types: [Array<string>, ...Array<unknown>] } }
  readonly nodes: Array<number>
  readonly strings: Array<string>
}

const tally = (file: string) => {
  const snap = JSON.parse(readFileSync(file, "utf8")) as Snapshot
  const fields = snap.snapshot.meta.node_fields
  const types = snap.snapshot.meta.node_types[0]
  const width = fields.length
  const iType = fields.indexOf("type")
  const iName = fields.indexOf("name")
  const iSize = fields.indexOf("self_size")
  const out = new Map<string, { count: number; bytes: number }>()
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + iType]!]!
    let name = type === "object" || type === "closure" || type === "native"
      ? snap.strings[snap.nodes[i + iName]!]!
      : `(${type})`
    if (name.length > 60) name = `${name.slice(0, 57)}...`
    const key = type === "closure" ? `closure ${name}` : name
    const entry = out.get(key) ?? { count: 0, bytes: 0 }
    entry.count += 1
    entry.bytes += snap.nodes[i + iSize]!
    out.set(key, entry)
  }
  return out
}

const n = Number(nText)
const base = tally(baseFile)
const after = tally(afterFile)
const rows: Array<[string, number, number]> = []
let total = 0
for (const [key, a] of after) {
  const b = base.get(key) ?? { count: 0, bytes: 0 }
  const bytes = (a.bytes - b.bytes) / n
  total += bytes
  rows.push([key, (a.count - b.count) / n, bytes])
}
rows.sort((x, y) => y[2] - x[2])
process.stdout.write(`per connection (N = ${n}): ${(total / 1024).toFixed(1)} KiB of JS heap (self sizes)\n\n   bytes   objects  constructor / closure\n`)
for (const [key, count, bytes] of rows.slice(0, Number(topText ?? 40))) {
  process.stdout.write(`${bytes.toFixed(0).padStart(8)}  ${count.toFixed(2).padStart(8)}  ${key}\n`)
}
