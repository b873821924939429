// Turning a run's results into the stdout table, docs/BENCHMARKS.md and docs/bench-latency.svg.
// The docs are rebuilt from the newest default run (S1–S4), the newest scale run (S5) and the
// newest storm run (S6) found in bench/results/, so one kind of run never erases another's figures.
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { S6_METHOD, S6_READING, S6_RUN, s6Rows } from "../scenarios/s6-report.ts"

export interface Results {
  kind: "default" | "scale" | "storm" | "partial"
  startedAt: string
  finishedAt: string
  wallSeconds: number
  env: Record<string, unknown>
  settings: Record<string, unknown>
  s1: { tidings: any; floor: any } | undefined
  s2: { tidings: any; floor: any } | undefined
  s3: { tidings: any; floor: any } | undefined
  /** S2's bus 1k/s step again, both servers up, in alternating rounds (older results lack it). */
  s2ref?: { tidings: any; floor: any } | undefined
  s4: { tidings: any; floor: any } | undefined
  s5: { wanted: number; connections: number; tidings: any; floor: any } | undefined
  /** The reconnect storm (bench/scenarios/s6.ts); only `--only S6` runs have it. */
  s6?: { tidings: any; floor: any } | undefined
  targets: Array<Target>
}

export interface Target {
  readonly name: string
  readonly tidings: number
  readonly floor: number
  readonly ratio: number
  readonly rule: string
  readonly pass: boolean
}

const ratio = (t: number, f: number) => (f === 0 ? (t === 0 ? 1 : Number.POSITIVE_INFINITY) : t / f)

export const targets = (r: Results): Array<Target> => {
  const out: Array<Target> = []
  // Read from the S2 reference's bus rounds (absent when the run had no bus mode).
  if (r.s2ref?.tidings.cpuPerDeliveryUs !== undefined) {
    const { tidings: t, floor: f } = r.s2ref
    const x = ratio(t.cpuPerDeliveryUs, f.cpuPerDeliveryUs)
    out.push({ name: `server CPU per delivery (S2, bus, ${t.rate}/s, alternating rounds, median)`, tidings: t.cpuPerDeliveryUs, floor: f.cpuPerDeliveryUs, ratio: x, rule: "≤ 1.2× floor", pass: x <= 1.2 })
  }
  if (r.s1 !== undefined) {
    const t = r.s1.tidings.rssPerConnKiB
    const f = r.s1.floor.rssPerConnKiB
    out.push({ name: "RSS per idle authenticated connection (S1)", tidings: t, floor: f, ratio: ratio(t, f), rule: "≤ 1.1× floor", pass: ratio(t, f) <= 1.1 })
  }
  if (r.s3 !== undefined) {
    const t = r.s3.tidings.cpuPerSessionUs
    const f = r.s3.floor.cpuPerSessionUs
    out.push({ name: "server CPU per new session (S3)", tidings: t, floor: f, ratio: ratio(t, f), rule: "≤ 1.5× floor", pass: ratio(t, f) <= 1.5 })
  }
  if (r.s2 !== undefined) {
    for (const mode of ["http", "bus"] as const) {
      if (!r.s2.tidings.steps.some((s: any) => s.mode === mode)) continue
      const t = r.s2.tidings.highestHeld[mode]
      const f = r.s2.floor.highestHeld[mode]
      const judged = r.s2ref?.tidings.byMode?.[mode] === undefined ? "" : `; ${n0(r.s2ref.tidings.rate)}/s judged by most of ${r.s2ref.tidings.rounds} alternating rounds`
      out.push({ name: `highest step held, p99 < 50 ms, no loss (S2, ${mode}${judged})`, tidings: t, floor: f, ratio: ratio(t, f), rule: "≥ floor", pass: t >= f })
    }
  }
  return out
}

// --- rows ----------------------------------------------------------------------------------------

type Row = readonly [string, string, string, string]

const n0 = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "–")
const n1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "–")
const n2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "–")
const times = (t: number, f: number) => (f === 0 || !Number.isFinite(t / f) ? "–" : `${(t / f).toFixed(2)}×`)
const lat = (l: any) => `${n1(l.p50)} / ${n1(l.p90)} / ${n1(l.p99)} / ${n0(l.max)}`

export const rows = (r: Results): Array<Row> => {
  const out: Array<Row> = []
  const row = (name: string, t: number, f: number, fmt: (x: number) => string = n1) => out.push([name, fmt(t), fmt(f), times(t, f)])
  if (r.s1 !== undefined) {
    const { tidings: t, floor: f } = r.s1
    row(`S1 sessions opened (of ${r.settings.s1Connections})`, t.opened, f.opened, n0)
    row("S1 connect rate, sessions/s", t.connectPerS, f.connectPerS, n0)
    row("S1 failures", t.failed, f.failed, n0)
    row("S1 time to subscribed p99, ms", t.connectMs.p99, f.connectMs.p99)
    row("S1 server RSS per connection, KiB", t.rssPerConnKiB, f.rssPerConnKiB)
    row("S1 server JS heap per connection, KiB", t.heapPerConnKiB, f.heapPerConnKiB)
    // Older result files have no committed figure.
    if (t.heapCommittedPerConnKiB !== undefined) {
      row("S1 server V8 heap committed per connection, KiB", t.heapCommittedPerConnKiB, f.heapCommittedPerConnKiB)
    }
    row("S1 server CPU per connection, µs", t.cpuPerConnUs, f.cpuPerConnUs, n0)
    row("S1 event-loop delay p99 during ramp, ms", t.eldRamp.p99, f.eldRamp.p99)
    row("S1 event-loop delay max during ramp, ms", t.eldRamp.max, f.eldRamp.max)
    row("S1 event-loop delay p99 at rest, ms", t.eldRest.p99, f.eldRest.p99)
  }
  if (r.s2 !== undefined) {
    const { tidings: t, floor: f } = r.s2
    for (let i = 0; i < t.steps.length; i++) {
      const a = t.steps[i]
      const b = f.steps[i]
      const name = `S2 ${a.mode} ${n0(a.rate)}/s`
      row(`${name}: delivered/s`, a.deliveredPerS, b.deliveredPerS, n0)
      out.push([`${name}: latency p50/p90/p99/max, ms`, lat(a.latency), lat(b.latency), times(a.latency.p99, b.latency.p99)])
      out.push([`${name}: lost / dropped / failed`, `${a.lost} / ${a.dropped} / ${a.failed}`, `${b.lost} / ${b.dropped} / ${b.failed}`, ""])
      row(`${name}: server CPU per delivery, µs`, a.cpuPerDeliveryUs, b.cpuPerDeliveryUs, n2)
      row(`${name}: server CPU, % of a core`, a.serverCpuPct, b.serverCpuPct, n0)
      out.push([`${name}: machine busy (all cores), %`, n0(a.machineBusyPct), n0(b.machineBusyPct), ""])
      out.push([`${name}: held`, a.held ? "yes" : "no", b.held ? "yes" : "no", ""])
    }
    row("S2 highest step held (http), events/s", t.highestHeld.http, f.highestHeld.http, n0)
    row("S2 highest step held (bus), events/s", t.highestHeld.bus, f.highestHeld.bus, n0)
    // Tidings only (the floor has no batch route): each batch step beside the single route's
    // step at the same rate, in the Tidings column; the last column is batch ÷ single.
    for (const a of t.batchSteps ?? []) {
      const single = t.steps.find((s: any) => s.mode === "http" && s.rate === a.rate)
      const name = `S2 batch of ${t.batchSize} ${n0(a.rate)}/s (Tidings; in brackets: POST /v1/events)`
      const beside = (x: number, y: number | undefined, fmt: (v: number) => string) => y === undefined ? fmt(x) : `${fmt(x)} (${fmt(y)})`
      out.push([`${name}: server CPU per delivery, µs`, beside(a.cpuPerDeliveryUs, single?.cpuPerDeliveryUs, n2), "–",
        single === undefined ? "" : `${times(a.cpuPerDeliveryUs, single.cpuPerDeliveryUs)} single`])
      out.push([`${name}: latency p50/p90/p99/max, ms`, lat(a.latency), "–", ""])
      out.push([`${name}: lost / dropped / failed`, `${a.lost} / ${a.dropped} / ${a.failed}`, "–", ""])
      out.push([`${name}: held`, a.held ? "yes" : "no", "–", ""])
    }
  }
  if (r.s2ref !== undefined) {
    const { tidings: t, floor: f } = r.s2ref
    const rounds = (xs: ReadonlyArray<number>, format: (x: number) => string) => xs.map(format).join(", ")
    if (t.cpuPerDeliveryUs !== undefined) {
      row(`S2 reference (bus ${n0(t.rate)}/s, alternating): server CPU per delivery (median round), µs`, t.cpuPerDeliveryUs, f.cpuPerDeliveryUs, n2)
      out.push([`S2 reference: bus server CPU per delivery by round, µs`, rounds(t.cpuPerDeliveryUsByRound, n2), rounds(f.cpuPerDeliveryUsByRound, n2), ""])
    }
    for (const mode of Object.keys(t.byMode ?? {})) {
      const a = t.byMode[mode]
      const b = f.byMode[mode]
      out.push([`S2 reference: ${mode} ${n0(t.rate)}/s p99 by round, ms`, rounds(a.p99ByRound, n1), rounds(b.p99ByRound, n1), ""])
      out.push([`S2 reference: ${mode} ${n0(t.rate)}/s held (most rounds)`, a.held ? "yes" : "no", b.held ? "yes" : "no", ""])
    }
  }
  if (r.s3 !== undefined) {
    const { tidings: t, floor: f } = r.s3
    row("S3 completed sessions/s", t.sessionsPerS, f.sessionsPerS)
    row("S3 time to first event p50, ms", t.firstEventMs.p50, f.firstEventMs.p50)
    row("S3 time to first event p99, ms", t.firstEventMs.p99, f.firstEventMs.p99)
    row("S3 server CPU per new session (median round), µs", t.cpuPerSessionUs, f.cpuPerSessionUs, n0)
    if (t.cpuPerSessionUsByRound !== undefined) {
      const rounds = (xs: ReadonlyArray<number>) => xs.map(n0).join(", ")
      out.push(["S3 server CPU per new session by round, µs", rounds(t.cpuPerSessionUsByRound), rounds(f.cpuPerSessionUsByRound), ""])
    }
    out.push(["S3 TLS sessions resumed", `${t.tlsResumed}/${t.completed}`, `${f.tlsResumed}/${f.completed}`, ""])
    row("S3 failures", sum(t.failures), sum(f.failures), n0)
  }
  if (r.s4 !== undefined) {
    const { tidings: t, floor: f } = r.s4
    row("S4 cross-node delivered/s at 5,000 events/s", t.deliveredPerS, f.deliveredPerS, n0)
    row("S4 cross-node latency p50, ms", t.latency.p50, f.latency.p50)
    row("S4 cross-node latency p99, ms", t.latency.p99, f.latency.p99)
    out.push(["S4 lost / dropped / failed", `${t.lost} / ${t.dropped} / ${t.failed}`, `${f.lost} / ${f.dropped} / ${f.failed}`, ""])
  }
  if (r.s5 !== undefined) {
    const { tidings: t, floor: f } = r.s5
    row(`S5 sessions opened (of ${r.s5.connections})`, t.opened, f.opened, n0)
    row("S5 connect rate, sessions/s", t.connectPerS, f.connectPerS, n0)
    // Older result files have only the RSS after the publish step.
    if (t.rssIdleMiB !== undefined) row("S5 server RSS with every session idle (after GC), MiB", t.rssIdleMiB, f.rssIdleMiB)
    row("S5 server RSS after the publish step, MiB", t.rssMiB, f.rssMiB)
    row("S5 server RSS per idle connection, KiB", t.rssPerConnKiB, f.rssPerConnKiB)
    row("S5 server CPU at rest, % of a core", t.cpuAtRestPct, f.cpuAtRestPct)
    row("S5 event-loop delay p99 at rest, ms", t.eldAtRest.p99, f.eldAtRest.p99)
    row("S5 event-loop delay max at rest (heartbeat sweep), ms", t.eldAtRest.max, f.eldAtRest.max)
    row("S5 missed heartbeats", t.missedHeartbeats, f.missedHeartbeats, n0)
    row("S5 latency p99 at 1,000 events/s, ms", t.latency.p99, f.latency.p99)
    row("S5 lost events", t.lost, f.lost, n0)
  }
  if (r.s6 !== undefined) out.push(...s6Rows(r.s6))
  return out
}

const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0)

export const table = (r: Results): string => {
  const all: Array<Row> = [["figure", "Tidings", "floor", "ratio"], ...rows(r)]
  const width = [0, 1, 2, 3].map((i) => Math.max(...all.map((row) => row[i]!.length)))
  const line = (row: Row) => row.map((cell, i) => (i === 0 ? cell.padEnd(width[i]!) : cell.padStart(width[i]!))).join("  ")
  const text = [line(all[0]!), width.map((w) => "-".repeat(w)).join("  "), ...all.slice(1).map(line)]
  if (r.targets.length > 0) {
    text.push("", "targets (this run):")
    for (const t of r.targets) {
      text.push(`  ${t.pass ? "PASS" : "FAIL"}  ${t.name}: Tidings ${n2(t.tidings)} vs floor ${n2(t.floor)} = ${n2(t.ratio)}× (${t.rule})`)
    }
  }
  return text.join("\n")
}

// --- SVG: p99 latency against delivered rate -------------------------------------------------------

const svg = (r: Results): string => {
  const W = 760
  const H = 440
  const m = { l: 70, r: 200, t: 40, b: 55 }
  const series: Array<{ name: string; color: string; dash: string; points: Array<[number, number, boolean]> }> = []
  const colors = { tidings: "#c0392b", floor: "#2471a3" }
  for (const side of ["tidings", "floor"] as const) {
    for (const mode of ["http", "bus"] as const) {
      const steps = (r.s2?.[side].steps ?? []).filter((s: any) => s.mode === mode)
      series.push({
        name: `${side === "tidings" ? "Tidings" : "floor"}, ${mode === "http" ? "POST /v1/events" : "bus"}`,
        color: colors[side],
        dash: mode === "http" ? "" : "6 4",
        points: steps.map((s: any) => [Math.max(1, s.deliveredPerS), Math.max(0.1, s.latency.p99), s.held])
      })
    }
  }
  const xs = series.flatMap((s) => s.points.map((p) => p[0]))
  const ys = series.flatMap((s) => s.points.map((p) => p[1]))
  const x0 = 10 ** Math.floor(Math.log10(Math.min(...xs, 1_000)))
  const x1 = 10 ** Math.ceil(Math.log10(Math.max(...xs, 10_000)))
  const y0 = 10 ** Math.floor(Math.log10(Math.min(...ys, 1)))
  const y1 = 10 ** Math.ceil(Math.log10(Math.max(...ys, 100)))
  const px = (x: number) => m.l + ((Math.log10(x) - Math.log10(x0)) / (Math.log10(x1) - Math.log10(x0))) * (W - m.l - m.r)
  const py = (y: number) => H - m.b - ((Math.log10(y) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0))) * (H - m.t - m.b)
  const parts: Array<string> = []
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`)
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`)
  parts.push(`<text x="${m.l}" y="22" font-size="14" font-weight="bold">S2 fan-out: p99 publish→deliver latency against delivered events/s</text>`)
  for (let d = x0; d <= x1; d *= 10) {
    parts.push(`<line x1="${px(d)}" y1="${m.t}" x2="${px(d)}" y2="${H - m.b}" stroke="#ddd"/>`)
    parts.push(`<text x="${px(d)}" y="${H - m.b + 16}" text-anchor="middle">${d.toLocaleString("en-US")}</text>`)
  }
  for (let d = y0; d <= y1; d *= 10) {
    parts.push(`<line x1="${m.l}" y1="${py(d)}" x2="${W - m.r}" y2="${py(d)}" stroke="#ddd"/>`)
    parts.push(`<text x="${m.l - 6}" y="${py(d) + 4}" text-anchor="end">${d >= 1 ? d : d.toFixed(1)}</text>`)
  }
  parts.push(`<line x1="${m.l}" y1="${py(50)}" x2="${W - m.r}" y2="${py(50)}" stroke="#888" stroke-dasharray="2 3"/>`)
  parts.push(`<text x="${W - m.r - 4}" y="${py(50) - 4}" text-anchor="end" fill="#666">p99 = 50 ms</text>`)
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 15}" text-anchor="middle">delivered events/s (log)</text>`)
  parts.push(`<text transform="translate(18 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">p99 latency, ms (log)</text>`)
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#444"/>`)
  series.forEach((s, i) => {
    if (s.points.length > 0) {
      const d = s.points.map((p, j) => `${j === 0 ? "M" : "L"}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(" ")
      parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash === "" ? "" : ` stroke-dasharray="${s.dash}"`}/>`)
      for (const p of s.points) {
        parts.push(`<circle cx="${px(p[0]).toFixed(1)}" cy="${py(p[1]).toFixed(1)}" r="4" fill="${p[2] ? s.color : "white"}" stroke="${s.color}" stroke-width="2"/>`)
      }
    }
    const ly = m.t + 10 + i * 22
    parts.push(`<line x1="${W - m.r + 14}" y1="${ly}" x2="${W - m.r + 44}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dash === "" ? "" : ` stroke-dasharray="${s.dash}"`}/>`)
    parts.push(`<text x="${W - m.r + 50}" y="${ly + 4}">${s.name}</text>`)
  })
  const ly = m.t + 10 + series.length * 22 + 10
  parts.push(`<circle cx="${W - m.r + 29}" cy="${ly}" r="4" fill="#555"/><text x="${W - m.r + 50}" y="${ly + 4}">step held</text>`)
  parts.push(`<circle cx="${W - m.r + 29}" cy="${ly + 20}" r="4" fill="white" stroke="#555" stroke-width="2"/><text x="${W - m.r + 50}" y="${ly + 24}">step not held</text>`)
  parts.push(`<text x="${m.l}" y="${H - 1}" font-size="10" fill="#666">${r.startedAt} · ${r.env.nproc} cores · Node ${r.env.node} · commit ${r.env.commit}</text>`)
  parts.push("</svg>")
  return `${parts.join("\n")}\n`
}

// --- docs/BENCHMARKS.md ----------------------------------------------------------------------------

const newest = (dir: string, kind: string): { file: string; results: Results } | undefined => {
  const files = readdirSync(dir).filter((f) => f.endsWith(`-${kind}.json`)).sort()
  const file = files.at(-1)
  return file === undefined ? undefined : { file, results: JSON.parse(readFileSync(join(dir, file), "utf8")) }
}

const markdownTable = (r: Results) => {
  const lines = ["| figure | Tidings | floor | Tidings ÷ floor |", "|---|---:|---:|---:|"]
  for (const row of rows(r)) lines.push(`| ${row.join(" | ")} |`)
  return lines.join("\n")
}

const targetList = (r: Results) =>
  r.targets.map((t) => `- **${t.pass ? "PASS" : "FAIL"}** ${t.name}: Tidings ${n2(t.tidings)}, floor ${n2(t.floor)}, ratio ${n2(t.ratio)} (${t.rule})`).join("\n")

const envLine = (r: Results) => {
  const e = r.env as any
  return `${e.date} · ${e.nproc} × ${e.cpuModel} · ${e.memoryGiB} GiB · Node ${e.node} (OpenSSL ${e.openssl}) · Redis ${e.redis} · commit \`${e.commit}\`${e.dirty ? " with uncommitted changes in src/" : ""} · load average at start ${e.loadAverage} · wall time ${r.wallSeconds} s`
}

export const writeDocs = (root: string, resultsDir: string): Array<string> => {
  const main = newest(resultsDir, "default")
  const scale = newest(resultsDir, "scale")
  const storm = newest(resultsDir, "storm")
  const out: Array<string> = []
  const doc: Array<string> = []
  doc.push(
    "# Benchmarks",
    "",
    "_This file is rewritten by `npm run bench` (S1–S4), `npm run bench -- --scale` (S5) and `npm run bench -- --only S6` (S6) from the newest results in `bench/results/`; edit `bench/lib/report.ts`, not this file._",
    "",
    METHOD
  )
  if (main !== undefined) {
    const r = main.results
    const s = r.settings as any
    doc.push(
      "## Results: S1–S4",
      "",
      envLine(r),
      "",
      `Raw results: \`bench/results/${main.file}\`. Steps of ${s.stepS} s; churn ${s.churnS} s with ${s.churnConcurrency} clients; fan-out ${s.fanout.connections} sessions on ${s.fanout.channels} channels.${s.profile ? " **Run with --cpu-prof: figures are distorted by the profiler.**" : ""}`,
      "",
      "### Targets",
      "",
      targetList(r),
      "",
      "### Figures",
      "",
      markdownTable(r),
      "",
      "Latency cells are p50 / p90 / p99 / max in ms. A step is *held* when every publish was accepted, nothing was dropped by the publisher or lost on the way, and p99 < 50 ms.",
      "",
      "![p99 latency against delivered rate](bench-latency.svg)",
      ""
    )
    writeFileSync(join(root, "docs", "bench-latency.svg"), svg(r))
    out.push("docs/bench-latency.svg")
  }
  if (scale !== undefined) {
    const r = scale.results
    doc.push(
      "## Results: S5 (scale)",
      "",
      envLine(r),
      "",
      `Raw results: \`bench/results/${scale.file}\`. ${r.s5!.connections} connections${r.s5!.connections < r.s5!.wanted ? ` (of ${r.s5!.wanted} asked: capped by the open-file limit of one process, \`ulimit -Hn\`)` : ""}.`,
      "",
      markdownTable(r),
      ""
    )
  }
  if (storm !== undefined) {
    const r = storm.results
    doc.push("## Results: S6 (reconnect storm)", "", envLine(r), "", `Raw results: \`bench/results/${storm.file}\`; the per-second timeline (sessions back, CPU) is in it.`, "", markdownTable(r), "", S6_READING, "")
  }
  writeFileSync(join(root, "docs", "BENCHMARKS.md"), `${doc.join("\n")}\n`)
  out.push("docs/BENCHMARKS.md")
  return out
}

const METHOD = `## How to run

\`\`\`sh
npm run bench                     # S1–S4, Tidings and the floor back to back (< 10 min on 2 cores)
npm run bench -- --scale          # S5 only: 100,000 idle sessions (capped by ulimit -Hn)
npm run bench -- --scale --connections 18000
npm run bench -- --only S2 --quick   # a short partial run; partial runs never rewrite this file
npm run bench -- --only S2R          # only the S2 reference: the 1k/s steps in alternating rounds
${S6_RUN}
npm run bench -- --profile        # servers run with --cpu-prof into bench/results/profiles/
node bench/tools/cpuprofile-top.ts bench/results/profiles/<file>.cpuprofile
\`\`\`

Options: \`--step-s N\` (S2/S4 step length), \`--rates 1000,5000,20000\`, \`--connections N\` (S1, or S5 with \`--scale\`), \`--churn-s N\` and \`--churn-rounds N\` (S3), \`--reference-rounds N\` and \`--reference-step-s N\` (the S2 reference), \`--rest-s N\` and \`--publish-s N\` (S5), \`--s6-sessions N\` and \`--s6-workers N\` (S6), \`--no-docs\`.

## What is measured, and how

- **Processes.** \`bench/run.ts\` starts its own \`redis-server\` on a free loopback port (no persistence), then for every scenario and each side a fresh server: **Tidings** as \`node src/main.ts\` in production mode (TLS files, Redis interpreters, an external issuer whose JWKS file the bench wrote, ticket and audit keys, file audit sink, metrics listener) with nothing bypassed, or the **floor** (\`bench/floor/server.ts\`). The load comes from separate child processes: \`bench/load/clients.ts\` (sessions, latency) and \`bench/load/publisher.ts\` (publishes). Redis is flushed between runs.
- **The floor** is the least a server must do for the same traffic: the same TLS policy (\`src/server/Tls.ts\`: TLS 1.2/1.3, AEAD suites, X25519MLKEM768 first — the clients offer it too, and the negotiated group is recorded) and the same TLS session ticket keys as Tidings at every start (\`TIDINGS_TLS_RESUMPTION_KEY_FILE\`, as a deployment sets it, so a restarted server resumes its clients' sessions), bare \`ws\`, one Redis subscriber connection per node fanning out to local sets (one JSON encode per event), heartbeats like Tidings', no auth, tickets, audit, rate limits or Effect. Its \`POST /v1/events\` runs the same Redis publish script as Tidings (read from \`src/interpreters/redis/EventBus.ts\` at start), so the Redis side of a publish is identical.
- **Sessions.** Tidings: the bench signs an ES256 access token per user (every session its own subject, so no per-subject limit is raised), \`POST /v1/tickets\` over a kept-alive connection, \`wss://…/v1/ws\` with \`tidings.v1\` and \`ticket.<ticket>\`, then \`subscribe\`. Floor: \`wss://\` and \`subscribe\`. Client sockets are spread over 200 loopback source addresses (127.0.0.2…).
- **Raised limits (Tidings):** \`TIDINGS_RATE_CONNECTS_PER_IP_PER_MIN\` and \`TIDINGS_RATE_TICKETS_PER_IP_PER_MIN\` = 11,000 (one machine plays every user from 200 addresses; under 200/s, so each is still one exact Redis script per request, as at the defaults) and \`TIDINGS_RATE_PUBLISHES_PER_S\` = 10,000,000 (one service publishes everything; leased from the shared bucket, as the default 5,000/s is); S5 also sets \`TIDINGS_IDLE_TIMEOUT_S=86400\` so idle sessions are not logged off during the ramp. Everything else is at its default.
- **Latency** is publish→deliver: the publisher writes the time an event was *due* (open-loop schedule, so a server that falls behind shows it) into the event's opaque \`id\`; the client subtracts it on arrival. Both processes read \`CLOCK_MONOTONIC\` (\`process.hrtime\`), one clock for the whole machine. Histograms are log-linear (≤ 1.6 % error, \`bench/lib/hist.ts\`). Client-side processing delay is included, equally for both servers.
- **CPU** is utime + stime of the server process(es) from \`/proc/<pid>/stat\` over the step (until delivery drained); **RSS** is VmRSS from \`/proc/<pid>/status\`. Per-connection memory is (after − before) / sessions, both read after a forced full GC (servers run with \`--expose-gc\`), the baseline taken after a warm-up of 200 sessions.
- **Event-loop delay** is measured the same way in both servers by a probe preloaded with \`--import bench/lib/probe.ts\` (\`perf_hooks.monitorEventLoopDelay\`, 10 ms resolution), read over the IPC channel; Tidings' metrics have no event-loop gauge, and nothing in \`src/\` is changed for the bench.
- **S1** ramps to 10,000 sessions (100 in flight). **S2**: 2,000 sessions (Tidings: clinicians, each with a care relationship to its patient channel, 10 per channel, 200 channels); steps of 1k/5k/20k events/s, first through \`POST /v1/events\` (64 kept-alive connections, at most 2,000 unanswered, the rest of a step dropped and counted), then straight through the bus (the publish script on Redis); then, Tidings only (the floor has no batch route), the same steps through \`POST /v1/events/batch\`, 50 events a request (\`--batch\`), a batch sent when its last event is due and its events' latency counted from then, and its CPU per delivery reported beside the single route's. **S3**: 50 concurrent clients, each a browser (kept-alive API connection, TLS session resumed on reconnect through an \`https.Agent\`), doing ticket + connect + subscribe + first event (published on the bus right after \`subscribed\`) + close; both servers run at once, a warm-up round each, then alternating rounds (T F, F T, …; 4 × 6 s each by default) so a noisy minute falls on both sides, and CPU per session is each side's median round. **S4**: two nodes on one Redis; 2,000 sessions on node B, 5k events/s through node A's \`POST /v1/events\`. **S5**: idle sessions (each on its own channel), 60 s at rest with 25 s heartbeats, then 1 event/s on each of 1,000 channels via HTTP; memory per idle connection is measured as in S1 (after a 200-session warm-up, both readings after a full GC), the second reading at the end of the rest.
${S6_METHOD}
- **Noise.** Everything shares the machine's cores (servers, Redis, load generators, and whatever else runs), which is why every figure sits beside the floor's from the same run. A single 10 s window moves by 10–15 % from run to run, so the two CPU targets are read from alternating rounds with both servers up, each side's median round: S3's churn, and the **S2 reference** (S2's 1k/s steps again, http and bus, after S2, on fresh servers with the same sessions, 3 rounds of 8 s per side). The held-step targets judge the 1k/s step by the same rounds: a side holds it when most of its rounds held (p99 < 50 ms, nothing lost or dropped), as a single window's p99 catches any passing stall of the machine, on either side. Run back to back instead, the two sides' windows lie minutes apart, and the same code measured 1.1× to 1.5× the floor's CPU per delivery.
`
