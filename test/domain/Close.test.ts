// Specifies what a peer is told about a failure: every domain error maps to exactly one close
// of contract §6, one HTTP status/code of §2 and one frame code of §3, and no input reaches them.
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { readFileSync } from "node:fs"
import { actionForClose, actionForTicketStatus, closeFor, CloseTable, frameCodeFor, httpFor } from "../../src/domain/Close.ts"
import {
  BackingService, ClosedNormally, ConnectionLost, Forbidden, type GatewayError, InternalError, MalformedInput, MessageTooBig, NotFound,
  ProtocolViolation, RateLimited, RateScope, RepeatedDenials, samples, SessionExpired, SessionRevoked, ShuttingDown,
  SubscriptionDenied, TicketCause, TicketRejected, TooManySessions, TooSlow, Unauthenticated, UnauthenticatedCause,
  Unavailable
} from "../../src/domain/Errors.ts"

/** Contract §6, copied by hand from CONTRACT.md (deliberately not from CloseTable). */
const CONTRACT_CLOSES: ReadonlyArray<{ readonly code: number; readonly reason: string }> = [
  { code: 1000, reason: "normal" },
  { code: 1001, reason: "going away" },
  // Not in CONTRACT.md §6: the codes `ws` sends on its own, added in docs/protocol.md.
  { code: 1002, reason: "protocol error" },
  // Recorded only (audit, metrics) for a connection cut without a close frame; never sent.
  { code: 1006, reason: "abnormal closure" },
  { code: 1007, reason: "invalid payload" },
  { code: 1008, reason: "policy violation" },
  { code: 1009, reason: "message too big" },
  { code: 1011, reason: "internal error" },
  { code: 4400, reason: "bad request" },
  { code: 4401, reason: "unauthorized" },
  { code: 4403, reason: "forbidden" },
  { code: 4408, reason: "session expired" },
  { code: 4409, reason: "session revoked" },
  { code: 4429, reason: "rate limited" },
  { code: 4430, reason: "too many sessions" },
  { code: 4503, reason: "try again later" },
  { code: 4508, reason: "too slow" }
]

/** Contract §2: the fixed error body codes, each with the only status it may travel with. */
const CONTRACT_HTTP: Readonly<Record<string, number>> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  rate_limited: 429,
  unavailable: 503,
  internal: 500
}

/** Contract §3: error frame codes. */
const CONTRACT_FRAME_CODES = ["bad_request", "forbidden", "rate_limited", "unavailable"]

const ALL_TAGS = [
  "MalformedInput", "ProtocolViolation", "MessageTooBig", "FrameRejected", "Unauthenticated", "TicketRejected", "Forbidden",
  "SubscriptionDenied", "RepeatedDenials", "NotFound", "RateLimited", "TooManySessions", "SessionExpired",
  "SessionRevoked", "TooSlow", "Unavailable", "ShuttingDown", "ClosedNormally", "ConnectionLost", "InternalError"
]

const isContractClose = (close: { readonly code: number; readonly reason: string }) =>
  CONTRACT_CLOSES.some((row) => row.code === close.code && row.reason === close.reason)

/** Every error value the domain can build: each constructor, with arbitrary legal field values. */
const anyError: fc.Arbitrary<GatewayError> = fc.oneof(
  fc.constantFrom(...samples),
  fc.constantFrom(...UnauthenticatedCause.literals).map((cause) => new Unauthenticated({ cause })),
  fc.constantFrom(...TicketCause.literals).map((cause) => new TicketRejected({ cause })),
  fc.tuple(fc.constantFrom(...RateScope.literals), fc.double({ noNaN: true })).map(([scope, retryAfterMs]) =>
    new RateLimited({ scope, retryAfterMs })
  ),
  fc.constantFrom(...BackingService.literals).map((service) => new Unavailable({ service }))
)

/** Builds an error whose one free field is taken straight from attacker-controlled text. */
const constructors: ReadonlyArray<(text: string) => GatewayError> = [
  (text) => new Unauthenticated({ cause: text as never }),
  (text) => new TicketRejected({ cause: text as never }),
  (text) => new RateLimited({ scope: text as never, retryAfterMs: 1 }),
  (text) => new Unavailable({ service: text as never })
]

const literalSets: ReadonlyArray<ReadonlyArray<string>> = [
  UnauthenticatedCause.literals,
  TicketCause.literals,
  RateScope.literals,
  BackingService.literals
]

describe("samples", () => {
  it("holds at least one value of every error tag", () => {
    expect(new Set(samples.map((e) => e._tag))).toEqual(new Set(ALL_TAGS))
  })
})

describe("closeFor", () => {
  it("maps every error to exactly one row of contract §6", () => {
    fc.assert(
      fc.property(anyError, (error) => {
        const close = closeFor(error)
        expect(Object.keys(close).sort()).toEqual(["code", "reason"])
        expect(CONTRACT_CLOSES.filter((row) => row.code === close.code && row.reason === close.reason)).toHaveLength(1)
      }),
      { numRuns: 2_000 }
    )
  })

  it("gives a reason that never contains text passed into the error", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: constructors.length - 1 }),
        fc.string({ minLength: 3 }),
        (which, text) => {
          let error: GatewayError
          try {
            error = constructors[which]!(text)
          } catch {
            // Free text is refused at construction: it can never reach a close reason.
            expect(literalSets[which]).not.toContain(text)
            return
          }
          // Only a fixed literal got in; the reason is still a fixed contract string.
          expect(literalSets[which]).toContain(text)
          expect(isContractClose(closeFor(error))).toBe(true)
        }
      ),
      { numRuns: 2_000 }
    )
  })

  it("never yields a reason containing any string outside the fixed reasons", () => {
    fc.assert(
      fc.property(
        anyError,
        fc.string({ minLength: 3 }).filter((text) => !CONTRACT_CLOSES.some((row) => row.reason.includes(text))),
        (error, text) => {
          expect(closeFor(error).reason).not.toContain(text)
        }
      ),
      { numRuns: 2_000 }
    )
  })

  it("does not let a number (retryAfterMs) into the reason", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1_000, max: 2 ** 31 }), (retryAfterMs) => {
        const close = closeFor(new RateLimited({ scope: "message", retryAfterMs }))
        expect(close).toEqual({ code: 4429, reason: "rate limited" })
        expect(close.reason).not.toContain(String(retryAfterMs))
      })
    )
  })

  describe("table", () => {
    const rows: ReadonlyArray<readonly [string, ReadonlyArray<GatewayError>, number, string]> = [
      ["ClosedNormally", [new ClosedNormally()], 1000, "normal"],
      ["ConnectionLost", [new ConnectionLost()], 1006, "abnormal closure"],
      ["ShuttingDown", [new ShuttingDown()], 1001, "going away"],
      ["MessageTooBig", [new MessageTooBig()], 1009, "message too big"],
      ["InternalError", [new InternalError()], 1011, "internal error"],
      ["MalformedInput", [new MalformedInput()], 4400, "bad request"],
      ["ProtocolViolation", [new ProtocolViolation()], 4400, "bad request"],
      ["TicketRejected (every cause)", TicketCause.literals.map((cause) => new TicketRejected({ cause })), 4401, "unauthorized"],
      ["Unauthenticated (every cause)", UnauthenticatedCause.literals.map((cause) => new Unauthenticated({ cause })), 4401, "unauthorized"],
      ["RepeatedDenials", [new RepeatedDenials()], 4403, "forbidden"],
      ["SubscriptionDenied", [new SubscriptionDenied()], 4403, "forbidden"],
      ["Forbidden", [new Forbidden()], 4403, "forbidden"],
      ["SessionExpired", [new SessionExpired()], 4408, "session expired"],
      ["SessionRevoked", [new SessionRevoked()], 4409, "session revoked"],
      ["RateLimited (every scope)", RateScope.literals.map((scope) => new RateLimited({ scope, retryAfterMs: 5 })), 4429, "rate limited"],
      ["TooManySessions", [new TooManySessions()], 4430, "too many sessions"],
      ["Unavailable (every service)", BackingService.literals.map((service) => new Unavailable({ service })), 4503, "try again later"],
      ["TooSlow", [new TooSlow()], 4508, "too slow"]
    ]
    for (const [name, errors, code, reason] of rows) {
      it(`closes ${name} with ${code} "${reason}"`, () => {
        expect(errors.length).toBeGreaterThan(0)
        for (const error of errors) expect(closeFor(error)).toEqual({ code, reason })
      })
    }

    it("uses every row of contract §6 for some error", () => {
      const used = samples.map(closeFor)
      for (const row of CONTRACT_CLOSES) expect(used).toContainEqual(row)
    })
  })
})

describe("httpFor", () => {
  it("maps every error to a status and code of contract §2", () => {
    fc.assert(
      fc.property(anyError, (error) => {
        const failure = httpFor(error)
        expect(Object.keys(failure).sort()).toEqual(["error", "status"])
        expect(Object.keys(CONTRACT_HTTP)).toContain(failure.error)
        expect(failure.status).toBe(CONTRACT_HTTP[failure.error])
      }),
      { numRuns: 2_000 }
    )
  })

  it.each([
    [new MalformedInput(), 400, "bad_request"],
    [new Unauthenticated({ cause: "expired" }), 401, "unauthorized"],
    [new TicketRejected({ cause: "used" }), 401, "unauthorized"],
    [new Forbidden(), 403, "forbidden"],
    [new NotFound(), 404, "not_found"],
    [new RateLimited({ scope: "ticket", retryAfterMs: 1 }), 429, "rate_limited"],
    [new Unavailable({ service: "ticket-store" }), 503, "unavailable"],
    [new InternalError(), 500, "internal"]
  ] as const)("answers %s with %i %s", (error, status, code) => {
    expect(httpFor(error)).toEqual({ status, error: code })
  })
})

describe("frameCodeFor", () => {
  it("maps every error to one of the four frame codes of contract §3", () => {
    fc.assert(
      fc.property(anyError, (error) => {
        expect(CONTRACT_FRAME_CODES).toContain(frameCodeFor(error))
      }),
      { numRuns: 2_000 }
    )
  })

  it.each([
    [new MalformedInput(), "bad_request"],
    [new SubscriptionDenied(), "forbidden"],
    [new RateLimited({ scope: "subscribe", retryAfterMs: 1 }), "rate_limited"],
    [new Unavailable({ service: "event-bus" }), "unavailable"]
  ] as const)("answers %s with %s", (error, code) => {
    expect(frameCodeFor(error)).toBe(code)
  })
})

describe("the client action table", () => {
  const codesOf = (action: string, slow = false) =>
    Object.values(CloseTable).filter((row) => row.action === action && ("slow" in row) === slow).map((row) => row.code).sort()

  it("gives every close code one action, as docs/protocol.md tables them", () => {
    expect(codesOf("retry")).toEqual([1001, 1006, 1011, 4503, 4508])
    expect(codesOf("retry", true)).toEqual([4429])
    expect(codesOf("reauthenticate")).toEqual([4401, 4408])
    expect(codesOf("stop")).toEqual([1000, 1002, 1007, 1008, 1009, 4400, 4403, 4409, 4410, 4430])
  })

  it("retries a close code it does not know (a proxy's, another server's)", () => {
    expect(actionForClose(1012)).toEqual({ action: "retry", slow: false })
    expect(actionForClose(4429)).toEqual({ action: "retry", slow: true })
    expect(actionForClose(4410)).toEqual({ action: "stop", slow: false })
  })

  it("gives the ticket request's answers their actions", () => {
    expect([400, 401, 403, 404, 408, 429, 500, 503].map((status) => [status, actionForTicketStatus(status).action])).toEqual([
      [400, "stop"], [401, "reauthenticate"], [403, "stop"], [404, "stop"], [408, "retry"], [429, "retry"], [500, "retry"], [503, "retry"]
    ])
    expect(actionForTicketStatus(429).slow).toBe(true)
  })

  it("lives in a module the browser client can import: no runtime import of effect", () => {
    const source = readFileSync(new URL("../../src/domain/Close.ts", import.meta.url), "utf8")
    const imports = [...source.matchAll(/^import (.*) from "(.*)"$/gm)]
    for (const [, what] of imports) expect(what!.startsWith("type "), what).toBe(true)
  })
})
