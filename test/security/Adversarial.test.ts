// Adversarial clients against an in-process node over real sockets: the attacks the e2e suite
// does not already make (each describe names what is covered elsewhere), and a frame fuzzer.
import fc from "fast-check"
import { decodeJwt } from "jose"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { LIMITED_BEFORE_CLOSE, MALFORMED_BEFORE_CLOSE } from "../../src/domain/Limits.ts"
import { type Gateway, ORIGIN, startGateway } from "../support/gateway.ts"
import {
  clientFrame, CLOSE_REASONS, closeFrameIn, dial, FRAME_ERROR_CODES, type Recorder, rawExchange, SECURITY_HEADERS, SERVER_FRAME_TYPES,
  serverFrames, sleep, upgradeRequest, within
} from "./support.ts"

let gateway: Gateway
beforeAll(async () => {
  gateway = await startGateway()
})
afterAll(() => gateway?.close())

const port = (g: Gateway = gateway) => Number(new URL(g.base).port)

/** A socket that completed its handshake (it may still be closed 4401 at once). */
const dialOpen = async (
  protocols: ReadonlyArray<string>,
  options: { path?: string; g?: Gateway; headers?: Record<string, string>; origin?: string } = {}
): Promise<Recorder> => {
  const g = options.g ?? gateway
  const url = options.path === undefined ? g.wsUrl : `${g.wsUrl.replace(/\/v1\/ws$/, "")}${options.path}`
  const dialed = await dial(url, protocols, {
    ca: g.ca,
    origin: options.origin ?? ORIGIN,
    ...(options.headers === undefined ? {} : { headers: options.headers })
  })
  if (dialed.kind !== "open") throw new Error(`expected a handshake, got ${JSON.stringify(dialed)}`)
  return dialed.rec
}

const withTicket = (ticket: string, g: Gateway = gateway) => dialOpen(["tidings.v1", `ticket.${ticket}`], { g })

/** A live session of a patient, proven by a round trip. */
const session = async (ref: string, g: Gateway = gateway) => {
  const rec = await withTicket(await g.ticket("patient", ref), g)
  expect(await rec.alive("hello")).toBe(true)
  return rec
}

/**
 * Upgrades with a raw client and writes every frame at once, then reads what came back for
 * `waitMs`: the answers (parsed) and the server's close frame. A raw client never answers the
 * close frame, so this sees the server's close whatever happens to the TCP connection after.
 */
const flood = async (g: Gateway, ticket: string, texts: ReadonlyArray<string>, waitMs = 2_000) => {
  const answer = await rawExchange(port(g), g.ca, Buffer.concat([
    Buffer.from(upgradeRequest({ origin: ORIGIN, protocols: `tidings.v1, ticket.${ticket}` }), "latin1"),
    ...texts.map((text) => clientFrame(0x1, text))
  ]), waitMs)
  expect(answer.status).toBe(101)
  const frames = serverFrames(answer.body)
  return {
    answers: frames.filter((f) => f.opcode === 0x1).map((f) => JSON.parse(f.payload.toString("utf8"))),
    close: closeFrameIn(answer.body)
  }
}

const UNAUTHORIZED = { code: 4401, reason: "unauthorized" }
const JSON_HEADERS = { "content-type": "application/json" }
/** A channel epoch (protocol v1.1). */
const EPOCH = /^[A-Za-z0-9]{8,16}$/

const event = (patient: string, ref = "apt_00000001") => ({ channel: `patient:${patient}`, kind: "appointment.updated", ref })

const noCors = (headers: Record<string, unknown>) => Object.keys(headers).filter((h) => h.startsWith("access-control-"))

describe("binary frames", () => {
  // Text frames: Flow.test "answers malformed frames with bad_request, then closes 4400" and
  // "closes 1009 on a frame over 4 KiB". Binary frames are covered only here.
  it("answers a binary frame bad_request even when it holds a valid message, and the session goes on", async () => {
    const rec = await session("pt_binary_000001")
    rec.ws.send(Buffer.from(JSON.stringify({ type: "ping", id: "in-binary" })), { binary: true })
    expect(await rec.next((f) => f.type === "error")).toEqual({ type: "error", code: "bad_request" })
    expect(await rec.alive("after-binary")).toBe(true)
    expect(rec.frames.filter((f) => f.id === "in-binary")).toEqual([])
    rec.ws.close()
  })

  it(`closes 4400 after more than ${MALFORMED_BEFORE_CLOSE} binary frames, and the gateway keeps serving`, async () => {
    const rec = await session("pt_binary_000002")
    for (const bytes of [Buffer.alloc(0), Buffer.from([0xff, 0x00, 0xfe]), Buffer.from("{\"type\":\"ping\",\"id\":\"x\"}"), Buffer.from([0])]) {
      rec.ws.send(bytes, { binary: true })
    }
    expect(await within(rec.closed, 5_000, "4400")).toEqual({ code: 4400, reason: "bad request" })
    expect(rec.frames.filter((f) => f.type === "error")).toEqual(Array.from({ length: MALFORMED_BEFORE_CLOSE }, () => ({ type: "error", code: "bad_request" })))
    expect((await gateway.http("GET", "/healthz")).status).toBe(200)
    const other = await session("pt_binary_000003")
    other.ws.close()
  })

  it("closes 1009 on a binary frame over 4 KiB", async () => {
    const rec = await session("pt_binary_000004")
    rec.ws.send(Buffer.alloc(4 * 1024 + 1, 0x41), { binary: true })
    expect(await within(rec.closed, 5_000, "1009")).toEqual({ code: 1009, reason: "message too big" })
  })
})

describe("look-alike channel names", () => {
  // The decoder alone: Wire.test "bad refs: too short, too long, spaces, lookalikes, paths, other
  // characters" and "unknown or differently spelled channel kinds". Here over a live socket,
  // each look-alike spelling the subscriber's OWN channel, so a normalizing server would grant it.
  const OWN = "pt_lookalike_01"
  const TRICKS: ReadonlyArray<readonly [string, string]> = [
    ["fullwidth letter in the kind", `ｐatient:${OWN}`],
    ["Cyrillic letters in the kind", `раtient:${OWN}`],
    ["zero-width joiner in the ref", `patient:pt_look\u200Dalike_01`],
    ["right-to-left override", `patient:\u202E${OWN}`],
    ["encoded slash and dots", `patient:${OWN}%2F..`],
    ["the brief's encoded path", "patient:abc%2F.."],
    ["NUL byte", `patient:${OWN}\u0000`],
    ["trailing newline", `patient:${OWN}\n`],
    ["space after the colon", `patient: ${OWN}`],
    ["upper-case kind", `PATIENT:${OWN}`],
    ["fullwidth digit", "patient:pt_lookalike_0\uFF11"],
    ["soft hyphen", `patient:${OWN}\u00AD`]
  ]

  it("answers every unicode or spelling trick bad_request and subscribes to nothing", async () => {
    const sockets: Array<Recorder> = []
    for (let i = 0; i < TRICKS.length; i += MALFORMED_BEFORE_CLOSE) {
      const rec = await session(OWN)
      const chunk = TRICKS.slice(i, i + MALFORMED_BEFORE_CLOSE)
      chunk.forEach(([, channel], j) => rec.send({ type: "subscribe", id: `t${i + j}`, channel }))
      expect(await rec.alive(`after-${i}`), chunk.map(([what]) => what).join(", ")).toBe(true)
      const answers = rec.frames.filter((f) => f.type === "error")
      expect(answers, chunk.map(([what]) => what).join(", ")).toEqual(chunk.map(() => ({ type: "error", code: "bad_request" })))
      expect(rec.frames.filter((f) => f.type === "subscribed")).toEqual([])
      sockets.push(rec)
    }
    // Nothing was subscribed under any spelling: an event on the real channel reaches no one.
    expect((await gateway.publish("svc_lookalike", event(OWN))).status).toBe(202)
    for (const rec of sockets) {
      expect(await rec.alive("after-event")).toBe(true)
      expect(rec.frames.filter((f) => f.type === "event")).toEqual([])
      rec.ws.close()
    }
  })
})

describe("JSON tricks in frames", () => {
  // The decoder alone: Wire.test "__proto__ and constructor keys", "wrong types" (since "41",
  // 1e400, MAX_SAFE_INTEGER + 2). Duplicate keys and -0 are covered only here.
  const OWN = "pt_dupkey_00001"
  const OTHER = "pt_dupkey_00002"

  it("acts on the last of duplicate keys, and authorizes exactly the channel it acts on", async () => {
    const rec = await session(OWN)
    rec.send(`{"type":"ping","type":"subscribe","id":"d1","channel":"patient:${OTHER}"}`)
    expect(await rec.next((f) => f.id === "d1")).toEqual({ type: "error", id: "d1", code: "forbidden" })
    rec.send(`{"type":"subscribe","id":"d2","channel":"patient:${OWN}","channel":"patient:${OTHER}"}`)
    expect(await rec.next((f) => f.id === "d2")).toEqual({ type: "error", id: "d2", code: "forbidden" })
    rec.send(`{"type":"subscribe","id":"d3","channel":"patient:${OTHER}","channel":"patient:${OWN}"}`)
    expect(await rec.next((f) => f.id === "d3")).toEqual({ type: "subscribed", id: "d3", channel: `patient:${OWN}`, epoch: expect.stringMatching(EPOCH), seq: 0, recovered: false })
    rec.send(`{"type":"subscribe","id":"d4","channel":"patient:${OTHER}","type":"ping"}`)
    expect(await rec.next((f) => f.type === "error" && f.id === undefined)).toEqual({ type: "error", code: "bad_request" })

    await gateway.publish("svc_dupkey", event(OTHER, "apt_other_0001"))
    await gateway.publish("svc_dupkey", event(OWN, "apt_own_00001"))
    expect(await rec.alive("after")).toBe(true)
    expect(rec.frames.filter((f) => f.type === "event").map((f) => [f.channel, f.ref])).toEqual([[`patient:${OWN}`, "apt_own_00001"]])
    rec.ws.close()
  })

  it("refuses __proto__ and constructor keys in frames, and the session's rights are unchanged", async () => {
    const rec = await session("pt_proto_frame_01")
    rec.send(`{"type":"ping","id":"p1","__proto__":{"type":"subscribe","channel":"patient:${OTHER}"}}`)
    rec.send(`{"__proto__":{"type":"subscribe","id":"p2","channel":"patient:${OTHER}"}}`)
    rec.send(`{"type":"subscribe","id":"p3","channel":"patient:${OTHER}","constructor":{"prototype":{"allowed":true}}}`)
    expect(await rec.alive("after-pollution")).toBe(true)
    expect(rec.frames.filter((f) => f.type === "error")).toEqual([
      { type: "error", code: "bad_request" }, { type: "error", code: "bad_request" }, { type: "error", code: "bad_request" }
    ])
    rec.send({ type: "subscribe", id: "s-other", channel: `patient:${OTHER}` })
    expect(await rec.next((f) => f.id === "s-other")).toEqual({ type: "error", id: "s-other", code: "forbidden" })
    rec.send({ type: "subscribe", id: "s-own", channel: "patient:pt_proto_frame_01" })
    expect(await rec.next((f) => f.id === "s-own")).toMatchObject({ type: "subscribed" })
    rec.ws.close()
  })

  it("refuses numbers as strings and strings as numbers", async () => {
    const rec = await session("pt_numbers_00001")
    rec.send(`{"type":"subscribe","id":"n1","channel":"patient:pt_numbers_00001","since":"0"}`)
    rec.send(`{"type":"ping","id":12345}`)
    rec.send(`{"type":"subscribe","id":"n3","channel":"patient:pt_numbers_00001","since":"1e3"}`)
    expect(await rec.alive("after")).toBe(true)
    expect(rec.frames.filter((f) => f.type !== "pong" && f.type !== "welcome")).toEqual([
      { type: "error", code: "bad_request" }, { type: "error", code: "bad_request" }, { type: "error", code: "bad_request" }
    ])
    rec.ws.close()
  })

  it("refuses since beyond the safe integers (1e400, 2^53 + 1), takes MAX_SAFE_INTEGER, and treats -0 as 0", async () => {
    const ref = "pt_since_huge_01"
    const channel = `patient:${ref}`
    expect((await gateway.publish("svc_since", event(ref, "apt_since_0001"))).status).toBe(202)
    const rec = await session(ref)
    rec.send(`{"type":"subscribe","id":"h1","channel":"${channel}","since":1e400}`)
    rec.send(`{"type":"subscribe","id":"h2","channel":"${channel}","since":9007199254740993}`)
    expect(await rec.alive("after-huge")).toBe(true)
    expect(rec.frames.filter((f) => f.type === "error")).toEqual([{ type: "error", code: "bad_request" }, { type: "error", code: "bad_request" }])
    expect(rec.frames.filter((f) => f.type === "subscribed")).toEqual([])

    rec.send(`{"type":"subscribe","id":"h3","channel":"${channel}","since":9007199254740991}`)
    expect(await rec.next((f) => f.id === "h3")).toEqual({ type: "subscribed", id: "h3", channel, epoch: expect.stringMatching(EPOCH), seq: 1, recovered: false })
    // -0 parses to a number equal to 0: the whole history is replayed, exactly as for since 0.
    rec.send(`{"type":"subscribe","id":"h4","channel":"${channel}","since":-0}`)
    expect(await rec.next((f) => f.id === "h4")).toEqual({ type: "subscribed", id: "h4", channel, epoch: expect.stringMatching(EPOCH), seq: 1, recovered: true })
    expect(await rec.next((f) => f.type === "event")).toMatchObject({ channel, seq: 1, ref: "apt_since_0001" })
    rec.ws.close()
  })
})

describe("JSON tricks in bodies", () => {
  // Unknown fields in general: Http.test "refuses bad bodies with 400 bad_request". The
  // pollution keys themselves, and what the node grants afterwards, are covered only here.
  it("refuses __proto__ and constructor keys in every body with 400, and grants nothing afterwards", async () => {
    const service = await gateway.token("service", "svc_proto_00001")
    const admin = await gateway.token("admin", "ad_proto_000001")
    const patient = await gateway.token("patient", "pt_proto_00001")
    const send = (method: string, path: string, body: string, token?: string) =>
      gateway.http(method, path, {
        body,
        headers: { ...JSON_HEADERS, "content-length": String(Buffer.byteLength(body)), ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) }
      })
    const attempts = [
      await send("POST", "/dev/token", `{"role":"patient","ref":"pt_proto_00002","__proto__":{"role":"admin","scope":"sessions:revoke"}}`),
      await send("POST", "/dev/token", `{"role":"patient","ref":"pt_proto_00002","constructor":{"prototype":{"scope":"sessions:revoke"}}}`),
      await send("POST", "/v1/tickets", `{"__proto__":{"role":"admin"}}`, patient),
      await send("POST", "/v1/tickets", `{"constructor":{"prototype":{"role":"admin"}}}`, patient),
      await send("POST", "/v1/events", `{"channel":"patient:pt_proto_00001","kind":"appointment.updated","ref":"apt_00000001","__proto__":{"channel":"patient:pt_proto_00003"}}`, service),
      await send("PUT", "/v1/care-relationships", `{"clinician":"cl_proto_00001","patient":"pt_proto_00001","__proto__":{"until":"2999-01-01T00:00:00Z"}}`, service),
      await send("POST", "/v1/admin/revocations", `{"subject":"pt_proto_00003","constructor":{"prototype":{"admin":true}}}`, admin)
    ]
    for (const reply of attempts) {
      expect(reply.status).toBe(400)
      expect(reply.json()).toEqual({ error: "bad_request" })
    }
    // The node still works, and nothing above leaked a right into a later request.
    expect((await gateway.http("GET", "/healthz")).status).toBe(200)
    const fresh = await gateway.token("patient", "pt_proto_00002")
    expect(decodeJwt(fresh).scope).toBeUndefined()
    expect(decodeJwt(fresh).role).toBe("patient")
    const revoke = await send("POST", "/v1/admin/revocations", `{"subject":"pt_proto_00003"}`, fresh)
    expect(revoke.status).toBe(403)
    const clinician = await withTicket(await gateway.ticket("clinician", "cl_proto_00001"))
    clinician.send({ type: "subscribe", id: "s", channel: "patient:pt_proto_00001" })
    expect(await clinician.next((f) => f.id === "s")).toEqual({ type: "error", id: "s", code: "forbidden" })
    clinician.ws.close()
  })
})

describe("tickets outside the subprotocol list", () => {
  // A missing ticket: Flow.test "closes 4401 for a missing, reused, expired, forged or
  // foreign-audience ticket". Tickets in the URL, headers, or twice in the list: only here.
  it("ignores a ticket in the query string: 4401, and that ticket is still unused", async () => {
    const ticket = await gateway.ticket("patient", "pt_query_000001")
    const rec = await dialOpen(["tidings.v1"], { path: `/v1/ws?ticket=${ticket}` })
    expect(await within(rec.closed, 5_000, "4401")).toEqual(UNAUTHORIZED)
    const proper = await withTicket(ticket)
    expect(await proper.alive("p")).toBe(true)
    proper.ws.close()
  })

  it("ignores an access token in the query string or an Authorization header: 4401", async () => {
    const token = await gateway.token("patient", "pt_query_000002")
    for (const options of [
      { path: `/v1/ws?access_token=${token}` },
      { path: "/v1/ws?access_token=" },
      { headers: { authorization: `Bearer ${token}` } },
      { path: `/v1/ws?ticket=${await gateway.ticket("patient", "pt_query_000002")}`, headers: { authorization: `Bearer ${token}` } }
    ]) {
      const rec = await dialOpen(["tidings.v1"], options)
      expect(await within(rec.closed, 5_000, "4401"), JSON.stringify(options).slice(0, 60)).toEqual(UNAUTHORIZED)
    }
  })

  it("uses only the first ticket of the list: a second one is not consumed, and is never tried", async () => {
    const [t1, t2, t3] = [
      await gateway.ticket("patient", "pt_twotix_00001"),
      await gateway.ticket("patient", "pt_twotix_00001"),
      await gateway.ticket("patient", "pt_twotix_00001")
    ]
    const both = await dialOpen(["tidings.v1", `ticket.${t1}`, `ticket.${t2}`])
    expect(await both.alive("both")).toBe(true)
    const second = await withTicket(t2!)
    expect(await second.alive("second")).toBe(true)
    const firstAgain = await withTicket(t1!)
    expect(await within(firstAgain.closed, 5_000, "4401")).toEqual(UNAUTHORIZED)
    // A bad first ticket is not rescued by a good second one, which stays unused.
    const badFirst = await dialOpen(["tidings.v1", "ticket.aaaa.bbbb.cccc", `ticket.${t3}`])
    expect(await within(badFirst.closed, 5_000, "4401")).toEqual(UNAUTHORIZED)
    const third = await withTicket(t3!)
    expect(await third.alive("third")).toBe(true)
    for (const rec of [both, second, third]) rec.ws.close()
  })
})

describe("ticket replay", () => {
  // Sequential reuse: Flow.test "closes 4401 for a missing, reused, …". Concurrent use, and
  // reuse through refresh over a socket (Session.test "refresh" covers the program), only here.
  it("opens exactly one session when one ticket is used on five sockets at once", async () => {
    for (let round = 0; round < 3; round++) {
      const ticket = await gateway.ticket("patient", `pt_replay_0000${round}`)
      const sockets = await Promise.all(Array.from({ length: 5 }, () => withTicket(ticket)))
      const alive = await Promise.all(sockets.map((rec, i) => rec.alive(`r${round}-${i}`)))
      expect(alive.filter(Boolean), `round ${round}`).toHaveLength(1)
      const refused = sockets.filter((_, i) => !alive[i])
      expect(await Promise.all(refused.map((rec) => rec.closed))).toEqual(refused.map(() => UNAUTHORIZED))
      for (const rec of sockets) rec.ws.close()
    }
  })

  it("answers a refresh with an already used ticket forbidden; a fresh one refreshes and is then used up", async () => {
    const ref = "pt_refresh_00001"
    const used = await gateway.ticket("patient", ref)
    const rec = await withTicket(used)
    expect(await rec.alive("open")).toBe(true)
    rec.send({ type: "refresh", id: "f1", ticket: used })
    expect(await rec.next((f) => f.id === "f1")).toEqual({ type: "error", id: "f1", code: "forbidden" })
    const fresh = await gateway.ticket("patient", ref)
    rec.send({ type: "refresh", id: "f2", ticket: fresh })
    expect(await rec.next((f) => f.id === "f2")).toMatchObject({ type: "refreshed", id: "f2" })
    rec.send({ type: "refresh", id: "f3", ticket: fresh })
    expect(await rec.next((f) => f.id === "f3")).toEqual({ type: "error", id: "f3", code: "forbidden" })
    // The refresh consumed it: it opens no session either.
    const replay = await withTicket(fresh)
    expect(await within(replay.closed, 5_000, "4401")).toEqual(UNAUTHORIZED)
    rec.ws.close()
  })
})

describe("message floods", () => {
  // The program alone: Session.test "answers rate_limited past the message burst, then closes
  // with RateLimited when it goes on". Over a socket, with a bystander, only here. Floods get
  // a node of their own: while the linger bug below stands, closing a node that was flooded
  // waits ~30 s for the paused sockets.
  let floods: Gateway
  beforeAll(async () => {
    floods = await startGateway()
  })
  afterAll(() => floods?.close(), 60_000)

  it("closes a refresh flood: forbidden answers, then rate_limited, then a 4429 close frame", async () => {
    const ticket = await floods.ticket("patient", "pt_refresh_flood1")
    const frames = Array.from({ length: 200 }, (_, i) => JSON.stringify({ type: "refresh", id: `f${i}`, ticket: "aaaa.bbbb.cccc" }))
    const { answers, close } = await flood(floods, ticket, frames)
    expect(close).toEqual({ code: 4429, reason: "rate limited" })
    expect(answers.filter((f) => f.code === "rate_limited")).toHaveLength(LIMITED_BEFORE_CLOSE)
    expect(answers.filter((f) => f.code === "forbidden").length).toBeGreaterThanOrEqual(1)
    expect(answers.filter((f) => f.type === "refreshed")).toEqual([])
  })

  it("answers a 200-ping flood with pongs, then rate_limited, then a 4429 close frame, while another client is served", async () => {
    const bystander = await session("pt_flood_000002", floods)
    const ticket = await floods.ticket("patient", "pt_flood_000001")
    const flooding = flood(floods, ticket, Array.from({ length: 200 }, (_, i) => JSON.stringify({ type: "ping", id: `f${i}` })))
    const started = Date.now()
    expect(await bystander.alive("meanwhile", 2_000)).toBe(true)
    expect(Date.now() - started).toBeLessThan(2_000)
    const { answers, close } = await flooding
    expect(close).toEqual({ code: 4429, reason: "rate limited" })
    const limited = answers.filter((f) => f.type === "error")
    expect(limited).toEqual(limited.map((f) => ({ type: "error", id: f.id, code: "rate_limited" })))
    expect(limited).toHaveLength(LIMITED_BEFORE_CLOSE)
    const pongs = answers.filter((f) => f.type === "pong")
    expect(pongs.length).toBeGreaterThanOrEqual(1)
    expect(pongs.length).toBeLessThan(200 - LIMITED_BEFORE_CLOSE)
    expect(await bystander.alive("after")).toBe(true)
    bystander.ws.close()
  })

  it("lets go of a client it closed for flooding at once, and can still stop promptly", async () => {
    // Connection.ts pauses the socket once 32 frames are queued and resumes it only from the
    // session's receive loop. When the session ends first (4429 here, 4400 likewise), the close
    // frame goes out but the socket is never resumed, so the client's close reply (or FIN) is
    // never read: the connection and its TLS state linger ~30 s, and so does server.close().
    const node = await startGateway()
    const clients = [await session("pt_linger_00001", node), await session("pt_linger_00002", node)] as const
    for (let i = 0; i < 200; i++) clients[0].ws.send(JSON.stringify({ type: "ping", id: `f${i}` }))
    for (let i = 0; i < 200; i++) clients[1].ws.send("not json")
    const ended = await Promise.all(clients.map((rec) => within(rec.closed, 5_000, "closed").catch(() => "still open after 5 s")))
    const stopping = Date.now()
    const stopped = await within(node.close(), 5_000, "stopped").then(() => "stopped", () => "still stopping after 5 s")
    expect({ pings: ended[0], junk: ended[1], stopped, stopMs: Date.now() - stopping < 5_000 }).toEqual({
      pings: { code: 4429, reason: "rate limited" },
      junk: { code: 4400, reason: "bad request" },
      stopped: "stopped",
      stopMs: true
    })
  }, 20_000)
})

describe("the handshake head", () => {
  // 431 for a big header on a plain route: Slowloris.test "answers 431 to a request head over
  // the 8 KiB limit". The subprotocol header on the upgrade path, only here.
  it("answers 431 to a subprotocol header over the head limit (one huge entry, or thousands), and keeps serving", async () => {
    const ticket = await gateway.ticket("patient", "pt_bighead_00001")
    for (const protocols of [
      `tidings.v1, ticket.${ticket}, ${"x".repeat(10 * 1024)}`,
      `${Array.from({ length: 2_000 }, (_, i) => `p${i}`).join(", ")}, tidings.v1, ticket.${ticket}`
    ]) {
      const answer = await rawExchange(port(), gateway.ca, upgradeRequest({ origin: ORIGIN, protocols }))
      expect(answer.status).toBe(431)
      expect(answer.text).not.toContain("101 Switching")
    }
    expect((await gateway.http("GET", "/healthz")).status).toBe(200)
    // Refused before the upgrade, so the ticket was never looked at.
    const rec = await withTicket(ticket)
    expect(await rec.alive("p")).toBe(true)
    rec.ws.close()
  })

  it("upgrades a long list of distinct subprotocols within the limit, selects only tidings.v1, and closes 4401 without a ticket", async () => {
    const protocols = [...Array.from({ length: 500 }, (_, i) => `p${i}`), "tidings.v1"]
    const dialed = await dial(gateway.wsUrl, protocols, { ca: gateway.ca, origin: ORIGIN })
    expect(dialed.kind).toBe("open")
    if (dialed.kind !== "open") return
    expect(dialed.protocol).toBe("tidings.v1")
    expect(await within(dialed.rec.closed, 5_000, "4401")).toEqual(UNAUTHORIZED)
  })

  it("refuses a malformed subprotocol list (a duplicate, an invalid token) with 400, and keeps serving", async () => {
    for (const protocols of ["tidings.v1, tidings.v1", "tidings.v1, a b", "tidings.v1, x@y", "tidings.v1,,ticket.a.b.c"]) {
      const answer = await rawExchange(port(), gateway.ca, upgradeRequest({ origin: ORIGIN, protocols }))
      expect(answer.status, protocols).toBe(400)
    }
    expect((await gateway.http("GET", "/healthz")).status).toBe(200)
  })

  it("answers every handshake it refuses with the security headers and no body", async () => {
    // Contract §2: "Every response carries" those headers. Upgrade.ts checks the handshake
    // itself, so nothing is left for `ws` to refuse with its own bare, text/html answer.
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["duplicate subprotocol", upgradeRequest({ origin: ORIGIN, protocols: "tidings.v1, tidings.v1" })],
      ["invalid subprotocol token", upgradeRequest({ origin: ORIGIN, protocols: "tidings.v1, x@y" })],
      ["unsupported version", upgradeRequest({ origin: ORIGIN, protocols: "tidings.v1", extra: { "Sec-WebSocket-Version": "7" } }).replace("Sec-WebSocket-Version: 13\r\n", "")],
      ["invalid key", upgradeRequest({ origin: ORIGIN, protocols: "tidings.v1" }).replace("dGhlIHNhbXBsZSBub25jZQ==", "short")],
      ["POST upgrade", upgradeRequest({ method: "POST", origin: ORIGIN, protocols: "tidings.v1", extra: { "Content-Length": "0" } })],
      ["Upgrade: h2c", upgradeRequest({ origin: ORIGIN, protocols: "tidings.v1" }).replace("Upgrade: websocket", "Upgrade: h2c")],
      // The control: a refusal by the gate itself.
      ["no tidings.v1 (the gate's own 400)", upgradeRequest({ origin: ORIGIN, protocols: "other" })]
    ]
    const seen = []
    for (const [what, request] of cases) {
      const answer = await rawExchange(port(), gateway.ca, request)
      seen.push({
        what,
        refused: answer.status !== undefined && answer.status >= 400,
        hsts: answer.headers["strict-transport-security"],
        cacheControl: answer.headers["cache-control"],
        nosniff: answer.headers["x-content-type-options"],
        body: answer.body
      })
    }
    expect(seen).toEqual(cases.map(([what]) => ({
      what,
      refused: true,
      hsts: SECURITY_HEADERS["strict-transport-security"],
      cacheControl: SECURITY_HEADERS["cache-control"],
      nosniff: SECURITY_HEADERS["x-content-type-options"],
      body: ""
    })))
    // And each malformed handshake is audited as a refusal.
    // (Aggregated per address: one record per interval carrying how many there were.)
    const refusals = (await gateway.audit()).filter((r) => r.event === "ws.rejected" && r.cause === "handshake")
    expect(refusals.reduce((n, r) => n + (r.count ?? 0), 0)).toBeGreaterThanOrEqual(6)
  })
})

describe("Host header and absolute-form targets", () => {
  const upgrade = (options: Parameters<typeof upgradeRequest>[0]) => rawExchange(port(), gateway.ca, upgradeRequest(options), 800)

  it("ignores the Host header: without Origin still 403, a good handshake still opens, and no answer names the host", async () => {
    const noOrigin = await upgrade({ host: "evil.example", protocols: "tidings.v1" })
    expect(noOrigin.status).toBe(403)
    expect(noOrigin.text.toLowerCase()).not.toContain("evil")

    const ticket = await gateway.ticket("patient", "pt_host_000001")
    const good = await upgrade({ host: "evil.example", origin: ORIGIN, protocols: `tidings.v1, ticket.${ticket}` })
    expect(good.status).toBe(101)
    expect(good.headers["sec-websocket-protocol"]).toBe("tidings.v1")
    expect(closeFrameIn(good.body)).toBeUndefined()
    expect(good.text.toLowerCase()).not.toContain("evil")

    const health = await rawExchange(port(), gateway.ca, "GET /healthz HTTP/1.1\r\nHost: evil.example\r\nX-Forwarded-Host: evil.example\r\nConnection: close\r\n\r\n")
    expect(health.status).toBe(200)
    expect(health.text.toLowerCase()).not.toContain("evil")
  })

  it("treats an absolute-form target as an unknown path (404), never as a way around the gate", async () => {
    // Stricter than RFC 9112 §3.2.2 (a server MUST accept the absolute form): documented, not a hole.
    const ticket = await gateway.ticket("patient", "pt_absform_00001")
    for (const target of ["https://evil.example/v1/ws", "https://localhost/v1/ws", `https://localhost:${port()}/v1/ws`]) {
      expect((await upgrade({ target, host: "evil.example", protocols: "tidings.v1" })).status, `${target} without Origin`).toBe(404)
      const withOrigin = await upgrade({ target, origin: ORIGIN, protocols: `tidings.v1, ticket.${ticket}` })
      expect(withOrigin.status, `${target} with Origin`).toBe(404)
    }
    const route = await rawExchange(port(), gateway.ca, "GET https://evil.example/healthz HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
    expect(route.status).toBe(404)
    expect(route.body).toBe("{\"error\":\"not_found\"}")
    expect(route.headers["strict-transport-security"]).toBe(SECURITY_HEADERS["strict-transport-security"])
    // Never upgraded, so the ticket is still good.
    const rec = await withTicket(ticket)
    expect(await rec.alive("p")).toBe(true)
    rec.ws.close()
  })
})

describe("HTTP method tricks", () => {
  // Unknown method on a plain path: Http.test "answers an unknown path or method 404 not_found".
  const PATHS = ["/v1/events", "/v1/tickets", "/v1/care-relationships", "/v1/admin/revocations", "/healthz", "/readyz", "/dev/token"]

  it("answers TRACE and PATCH on every known path 404 with the fixed body, never echoing the request", async () => {
    for (const method of ["TRACE", "PATCH"]) {
      for (const path of PATHS) {
        const reply = await gateway.http(method, path, { headers: { "x-echo-probe": "echo-probe-7f3a", cookie: "session=echo-probe-7f3a" } })
        expect(reply.status, `${method} ${path}`).toBe(404)
        expect(reply.body, `${method} ${path}`).toBe("{\"error\":\"not_found\"}")
        expect(reply.headers).toMatchObject(SECURITY_HEADERS)
        expect(JSON.stringify(reply.headers)).not.toContain("echo-probe")
      }
    }
  })

  it("makes no tunnel for CONNECT: the connection is closed without a byte, and the gateway keeps serving", async () => {
    // Node's server drops CONNECT when nothing listens for 'connect': no 404 is written, and
    // nothing is proxied. (Other unknown methods get the fixed 404, above.)
    for (const request of [
      "CONNECT /v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n",
      "CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n",
      "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n"
    ]) {
      const answer = await rawExchange(port(), gateway.ca, request, 3_000)
      expect(answer.closedByServer, request.split("\r\n")[0]).toBe(true)
      expect(answer.text, request.split("\r\n")[0]).toBe("")
    }
    expect((await gateway.http("GET", "/healthz")).status).toBe(200)
  })

  it("ignores X-HTTP-Method-Override and its cousins", async () => {
    const override = { "x-http-method-override": "DELETE", "x-http-method": "DELETE", "x-method-override": "DELETE" }
    expect((await gateway.http("GET", "/healthz", { headers: override })).status).toBe(200)

    const service = await gateway.token("service", "svc_override_001")
    const pair = { clinician: "cl_override_0001", patient: "pt_override_0001" }
    const body = JSON.stringify(pair)
    const headers = { ...JSON_HEADERS, "content-length": String(body.length), authorization: `Bearer ${service}` }
    // POST is no route for care relationships, whatever the override says.
    const posted = await gateway.http("POST", "/v1/care-relationships", { body, headers: { ...headers, "x-http-method-override": "PUT" } })
    expect(posted.status).toBe(404)
    // A PUT that claims to be a DELETE grants, as a PUT does.
    const put = await gateway.http("PUT", "/v1/care-relationships", { body, headers: { ...headers, ...override } })
    expect(put.status).toBe(204)
    const clinician = await withTicket(await gateway.ticket("clinician", pair.clinician))
    clinician.send({ type: "subscribe", id: "s", channel: `patient:${pair.patient}` })
    expect(await clinician.next((f) => f.id === "s")).toMatchObject({ type: "subscribed" })
    clinician.ws.close()
  })
})

describe("CORS and Origin matching", () => {
  // The allowed origin's preflight and a foreign origin's POST: Flow.test "answers a ticket
  // request with a 60 s ticket and CORS for an allowed origin only"; the WebSocket gate for a
  // wrong, missing or `null` Origin: Flow.test "answers 403 to a wrong, missing or null Origin".
  const preflight = (origin: string, path = "/v1/tickets") =>
    gateway.http("OPTIONS", path, { headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization" } })

  it("gives a preflight from a disallowed origin, or from `null`, no access-control-* header", async () => {
    for (const origin of ["https://evil.example", "null"]) {
      const reply = await preflight(origin)
      expect(reply.status, origin).toBe(204)
      expect(noCors(reply.headers), origin).toEqual([])
    }
    // The control: the same preflight from the allowed origin does get them.
    expect((await preflight(ORIGIN)).headers["access-control-allow-origin"]).toBe(ORIGIN)
  })

  it("allows only the exact origin: a trailing slash, another case, scheme or port, or a suffix is not it", async () => {
    const token = await gateway.token("patient", "pt_cors_000001")
    const variants = [
      `${ORIGIN}/`, "HTTPS://APP.EXAMPLE.TEST", "https://App.Example.Test", `${ORIGIN}:443`, `${ORIGIN}:8443`,
      "http://app.example.test", `${ORIGIN}.evil.example`, `${ORIGIN}, https://evil.example`, `${ORIGIN} https://evil.example`, `${ORIGIN}/x`
    ]
    for (const origin of variants) {
      expect(noCors((await preflight(origin)).headers), `preflight ${origin}`).toEqual([])
      const post = await gateway.http("POST", "/v1/tickets", { headers: { origin, authorization: `Bearer ${token}` } })
      expect(post.status, origin).toBe(201)
      expect(noCors(post.headers), `POST ${origin}`).toEqual([])
      const answer = await rawExchange(port(), gateway.ca, upgradeRequest({ origin, protocols: "tidings.v1" }))
      expect(answer.status, `upgrade ${origin}`).toBe(403)
    }
  })

  // POST /v1/tickets, and in dev mode POST /dev/token (for the demo page and local apps;
  // test/e2e/ClientDemo.test.ts), are the only routes a browser page may call cross-origin.
  it("answers CORS on no other route, even for the allowed origin", async () => {
    const service = await gateway.token("service", "svc_cors_000001")
    const replies = [
      await preflight(ORIGIN, "/v1/events"),
      await preflight(ORIGIN, "/healthz"),
      await preflight(ORIGIN, "/v1/care-relationships"),
      await gateway.http("GET", "/healthz", { headers: { origin: ORIGIN } }),
      await gateway.http("POST", "/v1/events", {
        body: JSON.stringify(event("pt_cors_000002")),
        headers: { ...JSON_HEADERS, origin: ORIGIN, authorization: `Bearer ${service}` }
      })
    ]
    expect(replies.map((r) => r.status)).toEqual([404, 404, 404, 200, 202])
    for (const reply of replies) expect(noCors(reply.headers)).toEqual([])
  })
})

describe("WebSocket protocol failures below the session", () => {
  /** Upgrade and, in the same write, one raw client frame. */
  const upgradeThen = async (ticket: string, frame: Buffer) =>
    rawExchange(port(), gateway.ca, Buffer.concat([
      Buffer.from(upgradeRequest({ origin: ORIGIN, protocols: `tidings.v1, ticket.${ticket}` }), "latin1"),
      frame
    ]), 3_000)

  it("closes an invalid UTF-8 text frame 1007 and an unmasked frame 1002 (RFC 6455), never 1011, and keeps serving", async () => {
    // Neither code is in contract §6's table: `ws` sends them itself, and Connection.ts gives
    // them fixed reasons (docs/protocol.md lists them beside §6).
    const utf8 = await upgradeThen(await gateway.ticket("patient", "pt_wsproto_00001"), clientFrame(0x1, Buffer.from([0xff, 0xfe, 0x80])))
    expect(utf8.status).toBe(101)
    expect(closeFrameIn(utf8.body)).toEqual({ code: 1007, reason: "invalid payload" })
    const unmasked = await upgradeThen(await gateway.ticket("patient", "pt_wsproto_00002"), Buffer.from([0x81, 0x02, 0x68, 0x69]))
    expect(unmasked.status).toBe(101)
    expect(closeFrameIn(unmasked.body)).toEqual({ code: 1002, reason: "protocol error" })
    expect((await gateway.http("GET", "/healthz")).status).toBe(200)
  })

  it("audits the close code the client actually received", async () => {
    // Connection.ts maps only ws's over-size error to a session end (MessageTooBig → 1009);
    // every other `ws` protocol error reaches the session as a plain 'close', so Session.run
    // audits `ws.closed` with close 1000 / cause ClosedNormally for a socket `ws` failed 1007.
    const ticket = await gateway.ticket("patient", "pt_wsproto_00003")
    const answer = await upgradeThen(ticket, clientFrame(0x1, Buffer.from([0xc3, 0x28])))
    expect(closeFrameIn(answer.body)?.code).toBe(1007)
    const jti = decodeJwt(ticket).jti
    const deadline = Date.now() + 2_000
    let closed: any
    while (closed === undefined && Date.now() < deadline) {
      closed = (await gateway.audit()).find((r) => r.event === "ws.closed" && r.jti === jti)
      if (closed === undefined) await sleep(20)
    }
    expect(closed).toBeDefined()
    expect({ close: closed.close, normal: closed.cause === "ClosedNormally" }).toEqual({ close: 1007, normal: false })
  })
})

describe("a frame fuzzer against live sessions", () => {
  // The decoder alone: Wire.test "never throws and answers a valid message or MalformedInput
  // (10,000 runs)". Here the whole path: ws → Connection → Session → answers, over TLS.
  const FRAMES = 2_000
  const BATCH = 8
  const OWN = "pt_fuzz_0000001"
  const OWN_CHANNEL = `patient:${OWN}`
  let fuzz: Gateway

  beforeAll(async () => {
    fuzz = await startGateway({
      TIDINGS_RATE_MESSAGES_PER_S: "100000",
      TIDINGS_RATE_SUBSCRIBES_PER_MIN: "1000000",
      TIDINGS_RATE_TICKETS_PER_MIN: "1000000",
      TIDINGS_RATE_TICKETS_PER_IP_PER_MIN: "1000000",
      TIDINGS_RATE_CONNECTS_PER_MIN: "1000000",
      TIDINGS_RATE_CONNECTS_PER_IP_PER_MIN: "1000000",
      TIDINGS_MAX_SESSIONS_PER_SUBJECT: "1000"
    })
  })
  afterAll(() => fuzz?.close())

  type Sent =
    | { readonly kind: "text"; readonly text: string }
    | { readonly kind: "bytes"; readonly bytes: Uint8Array; readonly binary: boolean }

  const isUtf8 = (bytes: Uint8Array) => {
    try {
      new TextDecoder("utf-8", { fatal: true }).decode(bytes)
      return true
    } catch {
      return false
    }
  }

  const nearValid = fc.record({
    type: fc.constantFrom("subscribe", "unsubscribe", "refresh", "ping", "Subscribe", "pong", "publish"),
    id: fc.oneof(fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/), fc.string(), fc.integer()),
    channel: fc.oneof(
      fc.constantFrom(OWN_CHANNEL, "patient:pt_fuzz_someone", "clinician:cl_fuzz_0000001", "patient:*"),
      fc.stringMatching(/^(patient|clinician):[A-Za-z0-9_-]{8,64}$/),
      fc.string()
    ),
    since: fc.oneof(fc.nat(), fc.double(), fc.constantFrom(-0, Number.MAX_SAFE_INTEGER, -1), fc.string()),
    ticket: fc.oneof(fc.stringMatching(/^[A-Za-z0-9_-]{1,40}\.[A-Za-z0-9_-]{1,40}\.[A-Za-z0-9_-]{1,40}$/), fc.string()),
    extra: fc.string()
  }, { requiredKeys: ["type"] }).map((message) => JSON.stringify(message))

  const frame: fc.Arbitrary<Sent> = fc.oneof(
    { weight: 3, arbitrary: fc.string().map((text) => ({ kind: "text" as const, text })) },
    { weight: 3, arbitrary: fc.json().map((text) => ({ kind: "text" as const, text })) },
    { weight: 3, arbitrary: fc.tuple(fc.uint8Array({ maxLength: 256 }), fc.boolean()).map(([bytes, binary]) => ({ kind: "bytes" as const, bytes, binary })) },
    { weight: 3, arbitrary: nearValid.map((text) => ({ kind: "text" as const, text })) },
    // Around the 4 KiB frame limit.
    { weight: 1, arbitrary: fc.integer({ min: 4_070, max: 4_120 }).map((n) => ({ kind: "text" as const, text: `{"type":"ping","id":"${"a".repeat(n - 22)}"}` })) }
  )

  const ID = /^[A-Za-z0-9_-]{1,64}$/
  const SESSION = /^c-[A-Za-z0-9_-]{16}$/
  const CHANNEL = /^(patient|clinician):[A-Za-z0-9_-]{8,64}$/

  /** What is wrong with one server frame, or undefined. */
  const problemWith = (raw: string): string | undefined => {
    let frame: any
    try {
      frame = JSON.parse(raw)
    } catch {
      return `not JSON: ${raw.slice(0, 80)}`
    }
    if (typeof frame !== "object" || frame === null || Array.isArray(frame)) return `not an object: ${raw.slice(0, 80)}`
    if (!(SERVER_FRAME_TYPES as ReadonlyArray<string>).includes(frame.type)) return `unknown type: ${raw.slice(0, 80)}`
    const keys = Object.keys(frame).sort().join(",")
    switch (frame.type) {
      case "error":
        if (!Object.keys(frame).every((k) => ["type", "id", "code", "channel"].includes(k))) return `error keys: ${keys}`
        if (!(FRAME_ERROR_CODES as ReadonlyArray<string>).includes(frame.code)) return `error code: ${frame.code}`
        if (frame.id !== undefined && !ID.test(frame.id)) return `error id: ${raw.slice(0, 80)}`
        return undefined
      case "pong":
        return keys === "id,type" && ID.test(frame.id) ? undefined : `pong: ${raw.slice(0, 80)}`
      case "welcome":
        return keys === "expiresAt,idleTimeoutS,session,type" && SESSION.test(frame.session) && !Number.isNaN(Date.parse(frame.expiresAt)) &&
            Number.isSafeInteger(frame.idleTimeoutS)
          ? undefined
          : `welcome: ${raw.slice(0, 80)}`
      case "subscribed":
        // The authorization oracle: the only channel this patient may ever be granted.
        if (frame.channel !== OWN_CHANNEL) return `subscribed to ${frame.channel}`
        return keys === "channel,epoch,id,recovered,seq,type" && ID.test(frame.id) && EPOCH.test(frame.epoch) && Number.isSafeInteger(frame.seq) &&
            typeof frame.recovered === "boolean"
          ? undefined
          : `subscribed: ${raw.slice(0, 80)}`
      case "unsubscribed":
        return keys === "channel,id,type" && ID.test(frame.id) && CHANNEL.test(frame.channel) ? undefined : `unsubscribed: ${raw.slice(0, 80)}`
      default:
        // No event is published and no genuine ticket is sent: `event` or `refreshed` is a hole.
        return `unexpected ${frame.type}: ${raw.slice(0, 80)}`
    }
  }

  it(`answers ${FRAMES} random frames, text and binary, only with well-formed frames; closes only 4400 or 1009 (1007 for invalid UTF-8 text), never 1011`, async () => {
    let sent = 0
    const closes = new Map<number, number>()
    await fc.assert(
      fc.asyncProperty(fc.array(frame, { minLength: BATCH, maxLength: BATCH }), async (batch) => {
        const rec = await withTicket(await fuzz.ticket("patient", OWN), fuzz)
        for (const item of batch) {
          if (rec.ws.readyState !== rec.ws.OPEN) break
          if (item.kind === "text") rec.ws.send(item.text)
          else rec.ws.send(item.bytes, { binary: item.binary })
          sent += 1
        }
        const alive = await rec.alive("fuzz-end", 5_000)
        if (alive) rec.ws.close(1000)
        const close = await within(rec.closed, 5_000, "close")
        closes.set(close.code, (closes.get(close.code) ?? 0) + 1)

        const problems = rec.raw.map(problemWith).filter((p) => p !== undefined)
        expect(problems).toEqual([])
        if (!alive) {
          const invalidText = batch.some((item) => item.kind === "bytes" && !item.binary && !isUtf8(item.bytes))
          expect(invalidText ? [4400, 1009, 1007] : [4400, 1009]).toContain(close.code)
          expect(close.reason).toBe(close.code === 1007 ? "invalid payload" : CLOSE_REASONS[close.code])
        }
      }),
      { numRuns: FRAMES / BATCH }
    )
    // Every generated frame went on the wire (the first runs of fast-check are not shrinks).
    expect(sent).toBeGreaterThanOrEqual(FRAMES)
    expect(closes.get(1011)).toBeUndefined()
    expect((await fuzz.http("GET", "/healthz")).status).toBe(200)
    expect((await fuzz.audit()).filter((r) => r.event === "ws.closed" && r.close === 1011)).toEqual([])
    const after = await withTicket(await fuzz.ticket("patient", OWN), fuzz)
    expect(await after.alive("after-fuzz")).toBe(true)
    after.ws.close()
  }, 180_000)
})

describe("after every attack above", () => {
  it("never closed a socket 1011 and still answers /healthz", async () => {
    expect((await gateway.audit()).filter((r) => r.event === "ws.closed" && r.close === 1011)).toEqual([])
    expect((await gateway.http("GET", "/healthz")).status).toBe(200)
    expect((await gateway.http("GET", "/readyz")).status).toBe(200)
  })
})
