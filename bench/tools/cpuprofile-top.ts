// Summarizes a V8 .cpuprofile (node --cpu-prof): the top functions by self time, and self time
// by package/file, so a hot spot can be named as file:function with its share.
//   node bench/tools/cpuprofile-top.ts <file.cpuprofile> [top=30] [--from-s A --to-s B] [--inclusive [substring]]
import { readFileSync } from "node:fs"

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly children?: ReadonlyArray<number>
}
interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
  readonly startTime: number
}

const args = process.argv.slice(2)
const file = args[0]
if (file === undefined) {
  process.stderr.write("usage: node bench/tools/cpuprofile-top.ts <file.cpuprofile> [top] [--from-s A --to-s B] [--inclusive [substring]]\n")
  process.exit(64)
}
const top = Number(args[1] && !args[1].startsWith("--") ? args[1] : 30)
const opt = (name: string) => {
  const i = args.indexOf(name)
  return i >= 0 ? Number(args[i + 1]) : undefined
}
const fromUs = (opt("--from-s") ?? 0) * 1e6
const toUs = (opt("--to-s") ?? Number.POSITIVE_INFINITY) * 1e6

const profile = JSON.parse(readFileSync(file, "utf8")) as Profile
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const self = new Map<number, number>()
let t = 0
let total = 0
for (let i = 0; i < profile.samples.length; i++) {
  const delta = profile.timeDeltas[i] ?? 0
  t += delta
  if (t < fromUs || t > toUs) continue
  const id = profile.samples[i]!
  self.set(id, (self.get(id) ?? 0) + delta)
  total += delta
}

const short = (url: string) => {
  if (url === "") return "(native)"
  const path = url.replace(/^file:\/\//, "")
  const nm = path.lastIndexOf("node_modules/")
  if (nm >= 0) return path.slice(nm + "node_modules/".length)
  const src = path.indexOf("/src/")
  if (src >= 0) return path.slice(src + 1)
  const bench = path.indexOf("/bench/")
  if (bench >= 0) return path.slice(bench + 1)
  return path
}
const pkg = (url: string) => {
  const s = short(url)
  if (s.startsWith("node:") || s === "(native)") return s.startsWith("node:") ? `node:${s.slice(5).split("/")[0]}` : s
  if (s.startsWith("src/")) return s
  if (s.startsWith("@")) return s.split("/").slice(0, 2).join("/")
  return s.split("/")[0]!
}

const fn = new Map<string, number>()
const files = new Map<string, number>()
for (const [id, us] of self) {
  const node = byId.get(id)!
  const { functionName, url, lineNumber } = node.callFrame
  const name = `${short(url)}:${lineNumber + 1} ${functionName || "(anonymous)"}`
  fn.set(name, (fn.get(name) ?? 0) + us)
  const key = pkg(url) || "(native)"
  files.set(key, (files.get(key) ?? 0) + us)
}

// Inclusive time: each function counted once per sampled stack, so "what is under X" can be read.
const parent = new Map<number, number>()
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
const inclusive = new Map<string, number>()
for (const [id, us] of self) {
  const seen = new Set<string>()
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const { functionName, url, lineNumber } = byId.get(at)!.callFrame
    const name = `${short(url)}:${lineNumber + 1} ${functionName || "(anonymous)"}`
    if (seen.has(name)) continue
    seen.add(name)
    inclusive.set(name, (inclusive.get(name) ?? 0) + us)
  }
}

const pct = (us: number) => `${((us / total) * 100).toFixed(1).padStart(5)} %`
process.stdout.write(`${file}: ${(total / 1e6).toFixed(2)} s of samples\n\nTop ${top} by self time:\n`)
for (const [name, us] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${pct(us)}  ${name}\n`)
if (args.includes("--inclusive")) {
  const match = args[args.indexOf("--inclusive") + 1]
  const wanted = match !== undefined && !match.startsWith("--") ? match : ""
  process.stdout.write(`\nTop ${top * 2} by inclusive time${wanted === "" ? "" : ` matching ${wanted}`}:\n`)
  for (const [name, us] of [...inclusive].filter(([name]) => name.includes(wanted)).sort((a, b) => b[1] - a[1]).slice(0, top * 2)) {
    process.stdout.write(`${pct(us)}  ${name}\n`)
  }
}
process.stdout.write(`\nSelf time by package / file:\n`)
for (const [name, us] of [...files].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${pct(us)}  ${name}\n`)
