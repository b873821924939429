// The PHI-free guarantee, proven on the real process: PHI-like canaries go into every input a
// caller controls, and none comes back out anywhere but the authorized subscriber's events.
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { request } from "node:https"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort } from "../support/net.ts"
import {
  CLOSE_REASONS, type Closed, dial, FRAME_ERROR_CODES, HTTP_ERROR_CODES, type Recorder, rawExchange, upgradeRequest, within
} from "./support.ts"

// What a leak would look like. Every canary is searched for case-insensitively, and the
// e-mail and phone by a core that survives URL-encoding ("john.patient%40…", "%2B1-555-…").
const NAME = "JohnQPatient"
const MRN = "MRN00012345678"
const DOB = "1961-04-23"
const EMAIL = "john.patient@example.org"
const PHONE = "+1-555-0100-4242"
const NEEDLES = ["johnqpatient", "mrn00012345678", "1961-04-23", "john.patient", "555-0100-4242"]
// NAME, MRN and DOB match the opaque ref shape `[A-Za-z0-9_-]{8,64}`, so the gateway must
// accept them as refs; EMAIL and PHONE never do.

/** The canaries found in a text (empty when it is clean). */
const leaks = (text: string): Array<string> => {
  const lower = text.toLowerCase()
  return NEEDLES.filter((needle) => lower.includes(needle))
}

const MAIN = resolve(import.meta.dirname, "../../src/main.ts")
const ORIGIN = "https://app.example.test"
const START_TIMEOUT_MS = 20_000
const EXIT_TIMEOUT_MS = 10_000

/** Caller-controlled headers sent with every request and handshake. */
const NOISY_HEADERS = {
  "user-agent": `Mozilla/5.0 (${NAME}; ${EMAIL}) ${PHONE}`,
  "x-forwarded-for": `${PHONE}, ${EMAIL}, ${DOB}`,
  "x-real-ip": MRN,
  "x-request-id": `${NAME}-${MRN}`,
  referer: `https://ehr.example/${NAME}?dob=${DOB}&mrn=${MRN}`,
  cookie: `patient=${MRN}; email=${EMAIL}`
}

interface Answer {
  readonly what: string
  readonly status: number
  readonly headers: Record<string, unknown>
  readonly body: string
}

/** Everything the process and its peers showed us, gathered in beforeAll. */
const seen = {
  /** Every HTTP answer (accepted or refused) and every refused handshake. */
  answers: [] as Array<Answer>,
  /** Every socket that completed a handshake, with the channels it was granted. */
  sockets: [] as Array<{ readonly what: string; readonly rec: Recorder; readonly upgradeHeaders: Record<string, unknown> }>,
  closes: [] as Array<{ readonly what: string; readonly close: Closed }>,
  /** Access tokens and tickets minted for canary subjects: credentials that must never be written down. */
  secrets: [] as Array<string>,
  stdout: "",
  stderr: "",
  exit: undefined as { code: number | null; signal: NodeJS.Signals | null } | undefined,
  auditFiles: [] as Array<string>,
  auditText: "",
  /** The Prometheus exposition of the internal metrics listener, read before the stop. */
  metrics: ""
}

let dir: string
let child: ChildProcess | undefined

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tidings-canary-"))
  const port = await freePort()
  const metricsPort = await freePort()
  child = spawn(process.execPath, [MAIN], {
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: dir,
      TIDINGS_LISTEN: `127.0.0.1:${port}`,
      TIDINGS_LOG_LEVEL: "debug",
      TIDINGS_AUDIT_SINK: `file:${join(dir, "audit")}`,
      TIDINGS_ALLOWED_ORIGINS: ORIGIN,
      TIDINGS_METRICS_LISTEN: `127.0.0.1:${metricsPort}`
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (seen.stdout += chunk))
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (seen.stderr += chunk))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child!.once("close", (code, signal) => done({ code, signal }))
  )

  const deadline = Date.now() + START_TIMEOUT_MS
  while (!seen.stdout.includes("\"listening\"")) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`not listening: ${seen.stdout} ${seen.stderr}`)
    await new Promise((done) => setTimeout(done, 20))
  }
  const ca = readFileSync(join(dir, ".data", "dev-cert.pem"), "utf8")

  const https = (
    what: string,
    method: string,
    path: string,
    options: { body?: string | undefined; headers?: Record<string, string>; json?: boolean } = {}
  ): Promise<Answer> =>
    new Promise((done, fail) => {
      const req = request({
        host: "localhost", port, method, path, ca, agent: false,
        headers: {
          ...NOISY_HEADERS,
          ...(options.body === undefined ? {} : { "content-length": String(Buffer.byteLength(options.body)) }),
          ...(options.json === false ? {} : { "content-type": "application/json" }),
          ...options.headers
        }
      }, (res) => {
        let body = ""
        res.setEncoding("utf8")
        res.on("data", (chunk: string) => (body += chunk))
        res.on("end", () => {
          const answer = { what, status: res.statusCode ?? 0, headers: res.headers, body }
          seen.answers.push(answer)
          done(answer)
        })
      })
      req.on("error", fail)
      req.end(options.body)
    })
  const post = (what: string, path: string, body: unknown, token?: string, method = "POST") =>
    https(what, method, path, {
      body: typeof body === "string" ? body : JSON.stringify(body),
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` }
    })

  const mint = async (role: string, ref: string) => {
    const answer = await post(`dev token ${role}`, "/dev/token", { role, ref })
    if (answer.status !== 200) throw new Error(`dev token ${role}: ${answer.status}`)
    const token = JSON.parse(answer.body).accessToken as string
    seen.secrets.push(token)
    return token
  }
  const ticketFor = async (token: string) => {
    const answer = await post("ticket", "/v1/tickets", {}, token)
    if (answer.status !== 201) throw new Error(`ticket: ${answer.status}`)
    const ticket = JSON.parse(answer.body).ticket as string
    seen.secrets.push(ticket)
    return ticket
  }
  const wsBase = `wss://localhost:${port}`
  const open = async (what: string, path: string, protocols: ReadonlyArray<string>, origin = ORIGIN) => {
    const dialed = await dial(`${wsBase}${path}`, protocols, { ca, origin, headers: NOISY_HEADERS })
    if (dialed.kind === "open") {
      seen.sockets.push({ what, rec: dialed.rec, upgradeHeaders: dialed.headers })
      void dialed.rec.closed.then((close) => seen.closes.push({ what, close }))
      return dialed.rec
    }
    if (dialed.kind === "rejected") {
      seen.answers.push({ what, status: dialed.status, headers: dialed.headers, body: dialed.body })
      return undefined
    }
    throw new Error(`${what}: ${dialed.message}`)
  }
  const raw = async (what: string, text: string) => {
    const answer = await rawExchange(port, ca, text)
    seen.answers.push({ what, status: answer.status ?? 0, headers: answer.headers, body: answer.body })
  }

  // --- Credentials for canary subjects, through /dev/token claims (role and ref). -------------
  const patient = await mint("patient", MRN)
  const clinician = await mint("clinician", NAME)
  const service = await mint("service", DOB)
  const admin = await mint("admin", `adm_${NAME}`)

  // --- /dev/token claims that are not refs. ---------------------------------------------------
  await post("dev token: canary role", "/dev/token", { role: NAME, ref: MRN })
  await post("dev token: e-mail ref", "/dev/token", { role: "patient", ref: EMAIL })
  await post("dev token: phone ref", "/dev/token", { role: "clinician", ref: PHONE })
  await post("dev token: extra claim", "/dev/token", { role: "admin", ref: MRN, scope: EMAIL })
  await post("dev token: malformed JSON", "/dev/token", `{"role":"patient","ref":"${NAME}",`)
  await https("dev token: not JSON", "POST", "/dev/token", { body: `role=patient&ref=${EMAIL}`, json: false, headers: { "content-type": "application/x-www-form-urlencoded" } })

  // --- Tickets: garbage credentials, canary bodies, canary origins. --------------------------
  await post("ticket: canary bearer", "/v1/tickets", {}, `${NAME}.${MRN}.${DOB}`)
  await https("ticket: canary basic auth", "POST", "/v1/tickets", { headers: { authorization: `Basic ${EMAIL}:${PHONE}` } })
  await https("ticket: canary scheme", "POST", "/v1/tickets", { headers: { authorization: `${NAME} ${MRN}` } })
  await post("ticket: token with a canary tail", "/v1/tickets", {}, `${patient}${NAME}`)
  await post("ticket: canary body", "/v1/tickets", { [NAME]: MRN, email: EMAIL }, patient)
  await post("ticket: malformed body", "/v1/tickets", `{"${DOB}":`, patient)
  await https("ticket: disallowed canary origin", "POST", "/v1/tickets", {
    headers: { authorization: `Bearer ${patient}`, origin: `https://${NAME}.example` }
  }).then((answer) => seen.secrets.push(JSON.parse(answer.body).ticket))
  await https("ticket preflight: canary origin and headers", "OPTIONS", "/v1/tickets", {
    headers: { origin: `https://${MRN}.example`, "access-control-request-method": "POST", "access-control-request-headers": `x-${NAME}, x-dob-${DOB}` }
  })

  // --- Events: canaries in every field, refused; and as opaque refs, accepted. ---------------
  const event = { channel: `patient:${MRN}`, kind: "appointment.updated", ref: "apt_00000001" }
  await post("event: canary field", "/v1/events", { ...event, [NAME]: EMAIL }, service)
  await post("event: canary kind", "/v1/events", { ...event, kind: `appointment.${NAME.toLowerCase()}` }, service)
  await post("event: e-mail channel", "/v1/events", { ...event, channel: `patient:${EMAIL}` }, service)
  await post("event: canary channel kind", "/v1/events", { ...event, channel: `${NAME.toLowerCase()}:${MRN}` }, service)
  await post("event: phone ref", "/v1/events", { ...event, ref: PHONE }, service)
  await post("event: e-mail id", "/v1/events", { ...event, id: EMAIL }, service)
  await post("event: PHI payload field", "/v1/events", { ...event, dob: DOB, name: NAME }, service)
  await post("event: malformed JSON", "/v1/events", `{"channel":"patient:${MRN}","ref":"${NAME}","dob":"${DOB}"`, service)
  await post("event: oversized", "/v1/events", JSON.stringify({ ...event, ref: `${NAME}${MRN}${DOB}${EMAIL}${PHONE}`.repeat(300) }), service)
  await post("event: by a patient", "/v1/events", { ...event, ref: MRN }, patient)
  await post("event: no token", "/v1/events", { ...event, ref: MRN })
  await post("event: canary query", `/v1/events?patient=${MRN}&dob=${DOB}&email=${encodeURIComponent(EMAIL)}`, { ...event, ref: EMAIL }, service)

  // --- Care relationships and revocations with canaries. -------------------------------------
  await post("care: e-mail and phone refs", "/v1/care-relationships", { clinician: EMAIL, patient: PHONE }, service, "PUT")
  await post("care: date of birth as until", "/v1/care-relationships", { clinician: NAME, patient: MRN, until: DOB }, service, "PUT")
  await post("care: canary field", "/v1/care-relationships", { clinician: NAME, patient: MRN, note: EMAIL }, service, "PUT")
  await post("care: by a patient", "/v1/care-relationships", { clinician: NAME, patient: MRN }, patient, "PUT")
  const granted = await post("care: granted", "/v1/care-relationships", { clinician: NAME, patient: MRN }, service, "PUT")
  if (granted.status !== 204) throw new Error(`care grant: ${granted.status}`)
  await post("revocation: e-mail subject", "/v1/admin/revocations", { subject: EMAIL }, admin)
  await post("revocation: by a patient", "/v1/admin/revocations", { subject: MRN }, patient)
  await post("revocation: canary field", "/v1/admin/revocations", { subject: MRN, reason: `${NAME} ${DOB}` }, admin)

  // --- Unknown paths, methods and query strings. ---------------------------------------------
  await https("unknown path", "GET", `/${NAME}/${encodeURIComponent(EMAIL)}?dob=${DOB}&tel=${encodeURIComponent(PHONE)}`)
  await https("unknown patient path", "POST", `/v1/patients/${MRN}`, { body: JSON.stringify({ name: NAME, dob: DOB }) })
  await https("TRACE with canaries", "TRACE", `/v1/events?mrn=${MRN}`)
  await https("health with a canary query", "GET", `/healthz?mrn=${MRN}&email=${encodeURIComponent(EMAIL)}`)

  // --- The WebSocket gate: canary origins, paths, subprotocols, hosts. ------------------------
  const ticket = await ticketFor(patient)
  await open("ws: canary origin", "/v1/ws", ["tidings.v1", `ticket.${ticket}`], `https://${NAME}.example`)
  await open("ws: canary path", `/v1/ws/${MRN}`, ["tidings.v1", `ticket.${ticket}`])
  await open("ws: canary path and query", `/${NAME}?dob=${DOB}`, ["tidings.v1"])
  await open("ws: canary subprotocols only", "/v1/ws", [NAME, MRN, `ticket.${ticket}`])
  await raw("ws raw: e-mail and phone subprotocols", upgradeRequest({ origin: ORIGIN, protocols: `tidings.v1, ${EMAIL}, ${PHONE}` }))
  await raw("ws raw: canary host, no origin", upgradeRequest({ host: `${NAME}.example`, protocols: `tidings.v1, ticket.${ticket}` }))
  await raw("ws raw: canary origin with a path", upgradeRequest({ origin: `${ORIGIN}/${MRN}`, protocols: "tidings.v1" }))
  await raw("ws raw: malformed request line", `GET /v1/ws?${NAME} HTTP/1.1 ${EMAIL}\r\nHost: localhost\r\n\r\n`)
  await raw("ws raw: canary header name", `GET /healthz HTTP/1.1\r\nHost: localhost\r\n${NAME} ${EMAIL}: ${PHONE}\r\n\r\n`)

  // Upgraded, then refused at the ticket: canary tickets, a canary subprotocol, a query ticket.
  const refusedAtTicket = [
    await open("ws: canary ticket", "/v1/ws", ["tidings.v1", NAME, `ticket.${NAME}.${MRN}.${DOB}`]),
    await open("ws: MRN as ticket", "/v1/ws", ["tidings.v1", `ticket.${MRN}`]),
    await open("ws: ticket in the query", `/v1/ws?ticket=${MRN}&email=${encodeURIComponent(EMAIL)}`, ["tidings.v1"])
  ]
  for (const rec of refusedAtTicket) if (rec !== undefined) await within(rec.closed, 5_000, "4401")

  // --- Sessions of the canary subjects. -------------------------------------------------------
  // The patient's own channel, with canary correlation ids and a canary query string.
  const mainTicket = await ticketFor(patient)
  const main = await open("ws: the patient's session", `/v1/ws?mrn=${MRN}&dob=${DOB}`, ["tidings.v1", `ticket.${mainTicket}`])
  if (main === undefined) throw new Error("the patient's session was refused")
  main.send({ type: "subscribe", id: NAME, channel: `patient:${MRN}` })
  await main.next((f) => f.type === "subscribed" && f.id === NAME)
  main.send({ type: "ping", id: MRN })
  await main.next((f) => f.type === "pong" && f.id === MRN)
  main.send({ type: "subscribe", id: "deny1", channel: `patient:${NAME}` })
  main.send({ type: "subscribe", id: DOB, channel: `clinician:${NAME}` })
  main.send({ type: "refresh", id: "r1", ticket: `${NAME}.${MRN}.${DOB}` })
  main.send({ type: "refresh", id: "r2", ticket: mainTicket })
  await main.next((f) => f.id === "r2")

  // The clinician, through the care relationship.
  const care = await open("ws: the clinician's session", "/v1/ws", ["tidings.v1", `ticket.${await ticketFor(clinician)}`])
  if (care === undefined) throw new Error("the clinician's session was refused")
  care.send({ type: "subscribe", id: "c1", channel: `patient:${MRN}` })
  await care.next((f) => f.type === "subscribed" && f.id === "c1")

  // Events whose ref and id are canaries: delivered to both, and nowhere else.
  const published = [
    await post("event: MRN ref and id", "/v1/events", { ...event, ref: MRN, id: MRN }, service),
    await post("event: name ref, DOB id", "/v1/events", { ...event, ref: NAME, id: DOB }, service),
    await post("event: DOB ref", "/v1/events", { ...event, kind: "result.available", ref: DOB, id: `${NAME}_${MRN}` }, service)
  ]
  for (const answer of published) if (answer.status !== 202) throw new Error(`publish: ${answer.status} ${answer.body}`)
  await main.next((f) => f.type === "event" && f.seq === 3)
  await care.next((f) => f.type === "event" && f.seq === 3)

  // Malformed frames full of canaries, as text and binary, until the session closes 4400.
  const malformed = await open("ws: malformed frames", "/v1/ws", ["tidings.v1", `ticket.${await ticketFor(patient)}`])
  if (malformed === undefined) throw new Error("refused")
  malformed.send({ type: "ping", id: EMAIL })
  malformed.send(`${NAME} ${DOB} ${PHONE} is not JSON`)
  malformed.ws.send(Buffer.from(JSON.stringify({ type: "ping", id: MRN })), { binary: true })
  malformed.send({ type: "subscribe", id: "x", channel: `patient:${PHONE}`, name: NAME })
  await within(malformed.closed, 5_000, "4400")

  // An oversized frame of canaries: 1009.
  const oversized = await open("ws: oversized frame", "/v1/ws", ["tidings.v1", `ticket.${await ticketFor(patient)}`])
  if (oversized === undefined) throw new Error("refused")
  oversized.send({ type: "ping", id: `${NAME}${MRN}${DOB}${EMAIL}${PHONE}`.repeat(100) })
  await within(oversized.closed, 5_000, "1009")

  // The relationship ends (the clinician's subscription is lost), then the patient is revoked.
  await post("care: ended", "/v1/care-relationships", { clinician: NAME, patient: MRN }, service, "DELETE")
  await care.next((f) => f.type === "error" && f.channel !== undefined)
  await post("revocation: the patient", "/v1/admin/revocations", { subject: MRN }, admin)
  await within(main.closed, 5_000, "4409")
  await post("ticket after revocation", "/v1/tickets", {}, patient)

  // A ticket that is never used stays a secret too.
  await ticketFor(clinician)

  // --- The metrics, then a clean stop, then every sink is read. -------------------------------
  seen.metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
  child.kill("SIGTERM")
  seen.exit = await within(exited, EXIT_TIMEOUT_MS, "exit")
  await within(Promise.all(seen.sockets.map((s) => s.rec.closed)), 5_000, "every socket closed")
  const auditDir = join(dir, "audit")
  seen.auditFiles = (readdirSync(auditDir, { recursive: true }) as Array<string>).filter((name) => name.endsWith(".jsonl"))
  seen.auditText = seen.auditFiles.map((name) => readFileSync(join(auditDir, name), "utf8")).join("")
}, 90_000)

afterAll(() => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

describe("canaries in every caller-controlled input of the real process", () => {
  // In-process, one canary, HTTP bodies and headers only: Http.test "keeps a canary sent in
  // every part of a refused request out of every body and header". One raw ref kept out of the
  // audit file: Process.test "writes a chained audit file … and no raw ref". Here: the real
  // process at debug level, five canaries, every input, and every sink including stdout/stderr.
  it("stopped cleanly on SIGTERM, so every sink below is complete", () => {
    expect(seen.exit).toEqual({ code: 0, signal: null })
    expect(seen.stdout).toContain("\"listening\"")
    expect(seen.stdout).toContain("\"shutting down\"")
  })

  it("did deliver the canary refs to the authorized subscribers (the control: canaries flowed through)", () => {
    for (const what of ["ws: the patient's session", "ws: the clinician's session"]) {
      const socket = seen.sockets.find((s) => s.what === what)!
      const events = socket.rec.frames.filter((f) => f.type === "event")
      expect(events.map((e) => [e.ref, e.id]), what).toEqual([[MRN, MRN], [NAME, DOB], [DOB, `${NAME}_${MRN}`]])
      expect(events.every((e) => e.channel === `patient:${MRN}`)).toBe(true)
    }
  })

  it("never puts a canary in a close reason; every close is one of contract §6", () => {
    const codes = seen.closes.map((c) => c.close.code)
    // Each way a socket ended here was driven by canary input.
    expect(codes).toEqual(expect.arrayContaining([4401, 4400, 1009, 4409, 1001]))
    for (const { what, close } of seen.closes) {
      expect(close.reason, what).toBe(CLOSE_REASONS[close.code])
      expect(leaks(close.reason), what).toEqual([])
    }
  })

  it("never puts a canary in an error frame, beyond the client's own correlation id and a channel it held", () => {
    // By contract §3 an error frame may echo the correlation id the same client sent, and a
    // lost subscription names the channel that client held; nothing else in it is input.
    let errors = 0
    for (const { what, rec } of seen.sockets) {
      const held = new Set(rec.frames.filter((f) => f.type === "subscribed").map((f) => f.channel))
      for (const frame of rec.frames.filter((f) => f.type === "error")) {
        errors += 1
        expect(Object.keys(frame).every((k) => ["type", "id", "code", "channel"].includes(k)), what).toBe(true)
        expect(FRAME_ERROR_CODES, what).toContain(frame.code)
        if (frame.id !== undefined) expect(rec.sentIds.has(frame.id), `${what}: echoed id`).toBe(true)
        if (frame.channel !== undefined) expect(held.has(frame.channel), `${what}: named channel`).toBe(true)
        const { id: _id, channel: _channel, ...rest } = frame
        expect(leaks(JSON.stringify(rest)), what).toEqual([])
      }
      // No frame is anything but JSON of a known shape.
      expect(rec.frames.filter((f) => f.unparsable !== undefined), what).toEqual([])
    }
    const main = seen.sockets.find((s) => s.what === "ws: the patient's session")!.rec.frames
    // A denied subscription to a canary channel does not name it.
    expect(main).toContainEqual({ type: "error", id: "deny1", code: "forbidden" })
    expect(main).toContainEqual({ type: "error", id: DOB, code: "forbidden" })
    expect(main).toContainEqual({ type: "error", id: "r1", code: "forbidden" })
    expect(main).toContainEqual({ type: "error", id: "r2", code: "forbidden" })
    const malformed = seen.sockets.find((s) => s.what === "ws: malformed frames")!.rec.frames
    expect(malformed).toEqual([
      { type: "welcome", session: expect.stringMatching(/^c-[A-Za-z0-9_-]{16}$/), expiresAt: expect.any(String), idleTimeoutS: 900 },
      { type: "error", code: "bad_request" }, { type: "error", code: "bad_request" }, { type: "error", code: "bad_request" }
    ])
    // The clinician's lost subscription names the channel it held, and only to it.
    const care = seen.sockets.find((s) => s.what === "ws: the clinician's session")!.rec.frames
    expect(care).toContainEqual({ type: "error", code: "forbidden", channel: `patient:${MRN}` })
    expect(errors).toBe(8)
  })

  it("never answers the handshake of a socket with a canary: only `tidings.v1` is selected", () => {
    for (const { what, upgradeHeaders } of seen.sockets) {
      expect(upgradeHeaders["sec-websocket-protocol"], what).toBe("tidings.v1")
      expect(leaks(JSON.stringify(upgradeHeaders)), what).toEqual([])
    }
  })

  it("never puts a canary in the body or a header of a refused request or handshake", () => {
    const refused = seen.answers.filter((a) => a.status >= 400 || a.status === 0)
    expect(refused.length).toBeGreaterThanOrEqual(40)
    for (const { what, status, headers, body } of refused) {
      expect(status, `${what}: an HTTP answer`).toBeGreaterThanOrEqual(400)
      expect(leaks(body), what).toEqual([])
      expect(leaks(JSON.stringify(headers)), what).toEqual([])
      // The routes answer a fixed code; the WebSocket gate an empty body (or ws's fixed text).
      if (body.startsWith("{")) {
        expect(Object.keys(JSON.parse(body)), what).toEqual(["error"])
        expect(HTTP_ERROR_CODES, what).toContain(JSON.parse(body).error)
      }
    }
  })

  it("never puts a canary in a header of any answer, accepted ones included", () => {
    // Accepted bodies go back to the caller who sent the value (a 202 names its channel; a
    // token is the caller's own), so only their headers are checked here.
    for (const { what, headers } of seen.answers) expect(leaks(JSON.stringify(headers)), what).toEqual([])
    const disallowed = seen.answers.find((a) => a.what === "ticket: disallowed canary origin")!
    expect(disallowed.status).toBe(201)
    expect(Object.keys(disallowed.headers).filter((h) => h.startsWith("access-control-"))).toEqual([])
  })

  it("logged JSON lines with request and connection ids (the control: the log sink was exercised)", () => {
    const lines = seen.stdout.split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l))
    const requests = lines.filter((l) => l.message === "request")
    expect(requests.length).toBeGreaterThan(5)
    for (const line of requests) {
      expect(line.annotations.request).toMatch(/^r-[A-Za-z0-9_-]{16}$/)
      expect(typeof line.annotations.status).toBe("number")
      // A route is a fixed table key or "unmatched": never the path the caller sent.
      expect(line.annotations.route).toMatch(/^(unmatched|(GET|POST|PUT|DELETE) \/[a-z0-9/-]*)$/)
    }
    const sessions = lines.filter((l) => l.message === "session opened" || l.message === "session closed")
    expect(sessions.length).toBeGreaterThan(2)
    for (const line of sessions) expect(line.annotations.connection).toMatch(/^c-[A-Za-z0-9_-]{16}$/)
  })

  it("never writes a canary, an access token or a ticket to stdout or stderr", () => {
    const output = `${seen.stdout}\n${seen.stderr}`
    expect(leaks(output)).toEqual([])
    expect(seen.secrets.length).toBeGreaterThanOrEqual(10)
    for (const secret of seen.secrets) {
      // The whole credential, and its payload alone (where the canary ref sits, base64url'd).
      expect(output.includes(secret)).toBe(false)
      expect(output.includes(secret.split(".")[1]!)).toBe(false)
    }
  })

  it("never writes a canary, an access token or a ticket to the audit file; refs there are keyed hashes", () => {
    expect(seen.auditFiles.length).toBeGreaterThanOrEqual(1)
    const records = seen.auditText.split("\n").filter((line) => line.length > 0).map((line) => JSON.parse(line))
    // Every kind of record a canary subject, channel or ref went through was written.
    expect(new Set(records.map((r) => r.event))).toEqual(new Set([
      "ticket.issued", "ticket.consumed", "ticket.rejected", "ws.rejected", "ws.opened", "ws.closed", "subscribe.allowed",
      "subscribe.denied", "event.published", "relationship.granted", "relationship.ended", "session.revoked",
      "auth.refused",
      "audit.opened",
      "audit.closed"
    ]))
    expect(leaks(seen.auditText)).toEqual([])
    for (const secret of seen.secrets) {
      expect(seen.auditText.includes(secret)).toBe(false)
      expect(seen.auditText.includes(secret.split(".")[1]!)).toBe(false)
    }
    // Each field, in every record that carries it (and each is carried by some record).
    const valuesOf = (field: string): Array<string> => records.flatMap((r) => (r[field] === undefined ? [] : [r[field]]))
    const shapes: ReadonlyArray<readonly [string, (value: string) => boolean]> = [
      ["subject", (v) => /^[0-9a-f]{32}$/.test(v)],
      ["channel", (v) => /^(patient|clinician):[0-9a-f]{32}$/.test(v)],
      ["origin", (v) => v === ORIGIN],
      ["jti", (v) => /^[A-Za-z0-9_-]{16,64}$/.test(v)],
      ["peer", (v) => /^[0-9a-f]{32}$/.test(v)]
    ]
    for (const [field, fits] of shapes) {
      const values = valuesOf(field)
      expect(values.length, field).toBeGreaterThan(0)
      expect(values.filter((value) => !fits(value)), field).toEqual([])
    }
    // Every aggregated refusal names its address, as a pseudonym.
    const refusals = records.filter((r) => r.event === "auth.refused" || r.event === "ws.rejected")
    expect(refusals.length).toBeGreaterThan(0)
    expect(refusals.filter((r) => typeof r.peer !== "string")).toEqual([])
    // Refusals are aggregated per address: the raw address is nowhere in the file.
    expect(seen.auditText).not.toContain("127.0.0.1")
    // The MRN's pseudonym is one stable hash: the patient's channel as subscribed, granted,
    // published to and ended is the same keyed hash, and it is not the raw ref.
    const channels = new Set(records.filter((r) => ["subscribe.allowed", "relationship.granted", "relationship.ended", "event.published"]
      .includes(r.event)).map((r) => r.channel))
    expect(channels.size).toBe(1)
  })

  it("keeps every canary out of the metrics exposition (names, labels, values)", () => {
    expect(seen.metrics).toContain("tidings_connects_total")
    expect(leaks(seen.metrics)).toEqual([])
    for (const secret of seen.secrets) expect(seen.metrics.includes(secret)).toBe(false)
  })
})
