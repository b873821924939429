// S6's part of the report: its rows (Tidings beside the floor) for the stdout table and
// docs/BENCHMARKS.md, and its method text. Kept beside the scenario so report.ts only calls it.

type Row = readonly [string, string, string, string]

const n0 = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "–")
const s1 = (ms: number) => (Number.isFinite(ms) ? (ms / 1000).toFixed(1) : "–")
const times = (t: number, f: number) => (f === 0 || !Number.isFinite(t / f) ? "" : `${(t / f).toFixed(2)}×`)
const counts = (o: Record<string, number> | undefined) =>
  o === undefined || Object.keys(o).length === 0 ? "none" : Object.entries(o).map(([k, v]) => `${k}: ${n0(v)}`).join(", ")

/** The node's and the clients' CPU from the new node listening to the last session back. */
const cpuOf = (side: any) => {
  const window = (side.timeline ?? []).filter((p: any) => p.s * 1000 > side.listeningMs && p.s * 1000 <= side.lastBackMs + 1_000)
  const mean = (key: string) => window.reduce((a: number, p: any) => a + p[key], 0) / Math.max(1, window.length)
  return {
    server: mean("serverCpuPct"),
    serverPeak: Math.max(0, ...window.map((p: any) => p.serverCpuPct)),
    clients: mean("clientCpuPct"),
    redis: mean("redisCpuPct"),
    machine: mean("machineBusyPct"),
    eldMax: Math.max(0, ...window.map((p: any) => (Number.isFinite(p.eldMaxMs) ? p.eldMaxMs : 0)))
  }
}

export const s6Rows = (s6: { readonly tidings: any; readonly floor: any }): Array<Row> => {
  const { tidings: t, floor: f } = s6
  const out: Array<Row> = []
  const row = (name: string, a: number, b: number, format: (x: number) => string = n0) => out.push([name, format(a), format(b), times(a, b)])
  const text = (name: string, a: string, b: string) => out.push([name, a, b, ""])
  const ct = cpuOf(t)
  const cf = cpuOf(f)
  row(`S6 sessions back and resubscribed (of ${n0(t.sessions)}; Tidings: recovered)`, t.back, f.back)
  row("S6 failures (gave up, not recovered, or not back 120 s after the node listened)", t.failed, f.failed)
  if (t.failed + f.failed > 0) text("S6 failures by cause", counts(t.failures), counts(f.failures))
  row("S6 SIGTERM → the last session back, s", t.lastBackMs, f.lastBackMs, s1)
  row("S6 SIGTERM → the old node exited, s", t.exitMs, f.exitMs, s1)
  text("S6 SIGTERM → the first / last 1001 at a client, s", `${s1(t.first1001Ms)} / ${s1(t.last1001Ms)}`, `${s1(f.first1001Ms)} / ${s1(f.last1001Ms)}`)
  row("S6 SIGTERM → the new node listening, s", t.listeningMs, f.listeningMs, s1)
  row("S6 the new node listening → the last session back, s", t.stormMs, f.stormMs, s1)
  row("S6 reopen rate (listening → last back), sessions/s", t.reopenPerS, f.reopenPerS)
  text("S6 back after SIGTERM p50 / p90 / p99, s",
    `${s1(t.backMsFromSigterm.p50)} / ${s1(t.backMsFromSigterm.p90)} / ${s1(t.backMsFromSigterm.p99)}`,
    `${s1(f.backMsFromSigterm.p50)} / ${s1(f.backMsFromSigterm.p90)} / ${s1(f.backMsFromSigterm.p99)}`)
  row("S6 server CPU per reopened session, µs", t.serverCpuPerReopenUs, f.serverCpuPerReopenUs)
  text("S6 node CPU while reopening, % of a core (mean / busiest second)", `${n0(ct.server)} / ${n0(ct.serverPeak)}`, `${n0(cf.server)} / ${n0(cf.serverPeak)}`)
  text("S6 storm clients' CPU / Redis's CPU / machine busy (all cores) while reopening, %",
    `${n0(ct.clients)} / ${n0(ct.redis)} / ${n0(ct.machine)}`, `${n0(cf.clients)} / ${n0(cf.redis)} / ${n0(cf.machine)}`)
  row("S6 node event-loop delay, longest while reopening, ms", ct.eldMax, cf.eldMax)
  if (t.tcp !== undefined) {
    text("S6 TCP, machine-wide: connects dropped at a full accept queue / SYNs sent again",
      `${n0(t.tcp.ListenOverflows)} / ${n0(t.tcp.TCPSynRetrans)}`, `${n0(f.tcp.ListenOverflows)} / ${n0(f.tcp.TCPSynRetrans)}`)
  }
  text("S6 socket created → `subscribed` p50 / p99, ms", `${n0(t.socketMs.p50)} / ${n0(t.socketMs.p99)}`, `${n0(f.socketMs.p50)} / ${n0(f.socketMs.p99)}`)
  if (t.ticketMs !== undefined) {
    text("S6 SIGTERM → the first ticket granted, s; ticket round trip p50 / p99, ms", `${s1(t.firstTicketMs)}; ${n0(t.ticketMs.p50)} / ${n0(t.ticketMs.p99)}`, "–")
  }
  row("S6 attempts per session (a ticket request, or the floor's connect)", t.connectAttempts / t.sessions, f.connectAttempts / f.sessions, (x) => x.toFixed(2))
  text("S6 ticket answers and errors", counts(t.tickets), "–")
  text("S6 socket errors", counts(t.upgradeErrors), counts(f.upgradeErrors))
  text("S6 closes seen by the clients", counts(t.closes), counts(f.closes))
  text("S6 sessions with every event once and in order", `${n0(t.events.complete)} / ${n0(t.events.sessions)} (${t.events.expectedPerSession} each)`, `${n0(f.events.complete)} / ${n0(f.events.sessions)} (${f.events.expectedPerSession} each)`)
  text("S6 events lost / duplicated / out of order / resets", eventsCell(t.events), eventsCell(f.events))
  row("S6 events published while down and never delivered (the floor keeps no history)", t.events.gap, f.events.gap)
  row("S6 initial open, 100 in flight, sessions/s", t.openPerS, f.openPerS)
  return out
}

const eventsCell = (e: any) => `${n0(e.lost)} / ${n0(e.duplicated)} / ${n0(e.unordered)} / ${n0(e.resets)}`

export const S6_RUN = `npm run bench -- --only S6         # S6 only: the reconnect storm, 10,000 sessions (--s6-sessions N; under 10,000 it is a partial run)`

export const S6_METHOD = `- **S6** (reconnect storm, \`bench/scenarios/s6.ts\`, clients \`bench/load/storm.ts\`): 10,000 sessions on one node over 2 client processes (one per 5,000, \`--s6-workers\`), each a patient on its own channel (a patient's app, the realistic case: every resume is its own history read) and each its own device (its own kept-alive API connection, one of 200 source addresses, 50 sessions on each), one access token for the run. Tidings' clients are the SDK itself (\`client/src\`: \`createClient\` with a \`ws\` socket and a ticket fetcher throwing \`TicketError\` on a refusal): its close table, its full-jitter backoff (\`client/src/backoff.ts\`: 0.5 s doubling to 30 s; 5 s to 120 s after a 429/4429), its resume with \`since\`/\`epoch\`; a network error or a 30 s timeout on \`POST /v1/tickets\` is retried, and the SDK stops by itself after three refused upgrades in a row. The floor's clients use the same backoff function and subscribe again after every reconnect (the floor has no tickets and no history). The sessions are opened (100 in flight), one event is published on every channel (so each client holds a position), then the node gets SIGTERM (Tidings closes every socket with 1001 and exits), is started again on the same port with the same keys and Redis as soon as it has exited, and a second event per channel goes into Redis through the bus while no node is up (beside the start, not delaying it); once every session is back, a third. A session is *back* at its next \`subscribed\` (Tidings: with \`recovered: true\`); it *failed* if the SDK stopped, the answer was not recovered (a reset), or it was not back 120 s after the node listened. Every session's events are checked against the ids published to its channel: each once, in seq order (Tidings: all three; the floor: the first and third, and the second counted as missed). Timed from the SIGTERM; the reopen rate is sessions back per second from the new node listening to the last one back; CPU is sampled every second. **Per-address limits in S6 are Tidings' defaults (600 a minute for tickets and connects)**, not the bench's raised ones: a storm asks one ticket and one connect per session behind an address (a refused TCP connect while the node is down reaches no limiter), so the defaults carry 600 sessions per address and the bench has 50. A hospital whose devices share a NAT address sets \`TIDINGS_RATE_TICKETS_PER_IP_PER_MIN\` and \`TIDINGS_RATE_CONNECTS_PER_IP_PER_MIN\` to at least the sessions behind its busiest address, with headroom for retries (e.g. 2,000 devices on the ward Wi-Fi's address: 3,000); over it, the SDK backs off harder (429/4429: 5 s doubling to 120 s) and the storm lasts longer, but no session fails.`

/** Printed under S6's table: how its figures fit together (true of every run so far, not of one). */
export const S6_READING = `How to read S6: a session's time back is the old node's drain and exit, the new node's start, then the SDK's backoff and the node's reconnect work. The clients come back faster than a node can take them (10,000 clients whose backoff ceilings are a few seconds): each new connection waits in the listener's accept queue (Node's default backlog, 511), and once that is full the kernel drops the connect (\`ListenOverflows\`), which the client's kernel sends again 1, 3, 7, 15, 31 s later; requests caught behind that time out (30 s here), and the SDK backs off on top. The node is then idle while its last clients wait, which is the tail in the per-second timeline of the raw results. Tidings pays about five times the floor's CPU per reconnect (two TLS handshakes, \`POST /v1/tickets\` and the socket, against the floor's one; the access token's signature; the rate limits', ticket's and resume's Redis scripts; audit), so its queue overflows longer. On this 2-core machine the storm's own clients take one core or more in the first seconds, which bounds the floor's figures more than the floor.`
