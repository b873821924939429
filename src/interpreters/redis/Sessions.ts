// The session registry on Redis. Each subject has a sorted set of live session ids scored by
// expiry, refreshed by their node, so the per-subject cap holds across nodes and a crashed
// node's sessions age out. A session opens in one script on its subject's slot (ticket,
// revocation, connect token, cap, lease). Revocation stores its time and is announced to every
// node; each node re-checks its own sessions every few seconds, so a lost one is repaired.
import { Cause, Clock, Deferred, Effect, Exit, Layer } from "effect"
import { RateLimited, SessionRevoked, TicketRejected, TooManySessions, Unavailable } from "../../domain/Errors.ts"
import { REVOCATION_TTL_S } from "../../domain/Limits.ts"
import type { RateRule } from "../../services/RateLimiter.ts"
import { type LiveSession, RECHECK_BOUND_MS, revokes, Sessions } from "../../services/Sessions.ts"
import { Settings } from "../../services/Settings.ts"
import { LocalSessions } from "../LocalSessions.ts"
import { attempt, RedisClient } from "./Client.ts"
import { ControlChannel } from "./Control.ts"
import { DataKeys } from "./DataKey.ts"
import { named } from "./Keys.ts"
import { TAKE_LUA } from "./RateLimiter.ts"
import * as Script from "./Script.ts"
import { groupBySlot } from "./Slots.ts"

/**
 * How long a registration lives without its node refreshing it; how often the node renews
 * and re-checks (revocation, care) each of its sessions; and how long a session's checks may
 * fail before it is ended with Unavailable (4503). A missed revocation is repaired within
 * `refreshMs`, and a session that cannot be checked is gone within `graceMs + refreshMs`.
 */
export interface Lease {
  readonly leaseMs: number
  readonly refreshMs: number
  readonly graceMs: number
}

export const LEASE: Lease = { leaseMs: 60_000, refreshMs: 5_000, graceMs: 15_000 }
// The documented bound holds by construction (cycle time and a 2 s command timeout fit in the rest).
if (LEASE.graceMs + LEASE.refreshMs > RECHECK_BOUND_MS) throw new Error("LEASE exceeds RECHECK_BOUND_MS")

// KEYS: sessions, revoked, and to open with a ticket its key and the connect bucket (the
// subject's hash tag: one slot). ARGV: now, lease ms, cap, session id, the ticket's issue time,
// and to open the connect limit and window ms. In one atomic step: the ticket taken (single
// use, as TicketStore.take); the revocation read (`revokes` in services/Sessions.ts, in Lua:
// revoked at or after the ticket's issue time), so one stored before it is never missed; a
// connect token (the rate limiter's bucket); the cap; the lease. Each refusal after the
// ticket's leaves it taken. Returns {outcome, retry after ms}: 1 registered, 0 over the cap,
// -1 revoked, -2 ticket already used (or expired), -3 no connect token.
const OPEN = Script.make<
  [sessions: string, revoked: string] | [sessions: string, revoked: string, ticket: string, connects: string],
  [now: number, lease: number, cap: number, id: string, issuedAt: number] | [now: number, lease: number, cap: number, id: string, issuedAt: number, limit: number, windowMs: number],
  [number, number]
>(`${TAKE_LUA}
local opening = #KEYS > 2
if opening and not redis.call('GETDEL', KEYS[3]) then return {-2, 0} end
local revoked = redis.call('GET', KEYS[2])
if revoked and tonumber(ARGV[5]) <= tonumber(revoked) then return {-1, 0} end
if opening then
  local taken, retry = take(KEYS[4], tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[1]), 1)
  if taken < 1 then return {-3, retry} end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return {0, 0} end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, 0}
`)

// KEYS: pairs of (sessions set, revocation key) of some subjects. ARGV: expiry, lease ms, then
// one session id per pair. Renews each member that is still there (CH: its score moved), and
// its set with it: renewing only the member would leave the set to expire a lease after its
// last registration, and the cap with it. Answers each pair's revocation time ('' for none).
export const RENEW = Script.make<ReadonlyArray<string>, ReadonlyArray<string | number>, Array<string>>(`
local revoked = {}
for i = 1, #KEYS, 2 do
  if redis.call('ZADD', KEYS[i], 'XX', 'CH', ARGV[1], ARGV[(i + 1) / 2 + 2]) == 1 then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
  end
  revoked[#revoked + 1] = redis.call('GET', KEYS[i + 1]) or ''
end
return revoked
`)

/** A local session's keys (hashed once, at registration) and when its checks last passed. */
interface Entry {
  readonly sessions: string
  readonly revoked: string
  checkedAt: number
}

/** Sessions renewed and checked per script before the fiber waits and lets other work run. */
const RENEW_SLICE = 1_000

export const layerWith = ({ leaseMs, refreshMs, graceMs }: Lease) => Layer.effect(
  Sessions,
  Effect.gen(function*() {
    const client = yield* RedisClient
    const redis = client.commands
    const control = yield* ControlChannel
    const settings = yield* Settings
    // EVALSHA names its key count, so on a cluster auto-pipelining groups each renewal by its
    // own first key (a custom command whose first argument was the key count grouped renewals of
    // different slots together, and the cluster refused them all).
    const call = attempt("sessions")
    const keys = named((yield* DataKeys).name)

    // This node's sessions by subject pseudonym (what revocations carry), and their entries.
    const local = new LocalSessions(keys.subjectTag)
    const entries = new Map<LiveSession, Entry>()

    yield* control.listen((message) => {
      if (message.t !== "revoke") return
      for (const session of local.withKey(message.s)) session.end(new SessionRevoked())
    })

    /** Each session's revocation time ('' for none), or null where the check failed. */
    const renewGroup = (group: ReadonlyArray<readonly [LiveSession, Entry]>, now: number): Promise<Array<string | null>> =>
      RENEW.run(
        redis,
        group.flatMap(([, entry]) => [entry.sessions, entry.revoked]),
        [now + leaseMs, leaseMs, ...group.map(([session]) => session.id)]
      ).then((answers) => group.map((_, i) => answers[i] ?? null), () => group.map(() => null))

    // One script per slice on a single Redis; on a cluster the subjects' keys live in many
    // slots, so one per slot (auto-pipelined), each answering for its sessions.
    const renew = async (slice: ReadonlyArray<readonly [LiveSession, Entry]>, now: number): Promise<Array<string | null>> => {
      const answers: Array<string | null> = new Array(slice.length)
      const groups = groupBySlot(client.cluster, slice.map((_, i) => i), (i) => slice[i]![1].sessions)
      await Promise.all(groups.map(async (group) => {
        const answered = await renewGroup(group.map((i) => slice[i]!), now)
        group.forEach((i, k) => (answers[i] = answered[k]!))
      }))
      return answers
    }

    // One cycle over every local session, a slice at a time (one burst for 100,000 sessions
    // would hold the event loop, and every socket, for a second): renew its lease, end it if
    // revoked, re-check the subscriptions that rest on a care relationship. A check that
    // failed never counts as a pass: the session is retried next cycle, and ended with
    // Unavailable (4503, its client reconnects elsewhere) once its checks failed for graceMs.
    const reconcile = Effect.gen(function*() {
      const all = [...entries]
      for (let start = 0; start < all.length; start += RENEW_SLICE) {
        const slice = all.slice(start, start + RENEW_SLICE)
        const checked = yield* Clock.currentTimeMillis
        const revokedAt = yield* Effect.promise(() => renew(slice, checked))
        const careFailed = new Set<LiveSession>()
        const care = slice.flatMap(([session]) => {
          // A check that dies counts as one that failed: that session alone is retried and,
          // failing for graceMs, ended; the slice's other sessions are checked as usual.
          const check = session.recheckCare()
          return check === undefined ? [] : [Effect.map(Effect.exit(check), (exit) => {
            if (Exit.isFailure(exit)) careFailed.add(session)
          })]
        })
        if (care.length > 0) yield* Effect.all(care, { concurrency: "unbounded", discard: true })
        const now = yield* Clock.currentTimeMillis
        for (const [i, [session, entry]] of slice.entries()) {
          const at = revokedAt[i]
          if (at !== null && at !== undefined && revokes(at === "" ? undefined : Number(at), session.issuedAt)) {
            session.end(new SessionRevoked())
          } else if (at !== null && at !== undefined && !careFailed.has(session)) {
            entry.checkedAt = checked
          } else if (now - entry.checkedAt >= graceMs) {
            session.end(new Unavailable({ service: "sessions" }))
          }
        }
      }
    })

    // Every refreshMs, and at once when the control connection is back (what it carried in
    // between was never heard).
    let wake = Deferred.makeUnsafe<void>()
    yield* control.onReconnect(() => Deferred.doneUnsafe(wake, Effect.void))
    yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
      // A defect in one cycle (a session's check that threw) must not end the loop: every later
      // revocation and care end missed by its announcement would then go unrepaired, silently.
      yield* reconcile.pipe(Effect.catchCause((cause) =>
        Effect.logError("session re-check cycle failed; the next one runs as planned").pipe(
          Effect.annotateLogs({ error: Cause.squash(cause) instanceof Error ? (Cause.squash(cause) as Error).name : "unknown" })
        )
      ))
      yield* Effect.raceFirst(Effect.sleep(refreshMs), Deferred.await(wake))
      wake = Deferred.makeUnsafe<void>()
    })))

    /** What a refused OPEN answered, as the caller's error. */
    type Refusal<E> = (outcome: number, retryAfterMs: number) => E

    // Uninterruptible, as an acquire: a session is registered with its release, or not at all.
    const hold = <E>(session: LiveSession, opening: { readonly jti: string; readonly connect: RateRule } | undefined, refusal: Refusal<E>) =>
      Effect.uninterruptible(Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const subjectKeys = keys.subject(session.subject)
        const tag = subjectKeys.tag
        const entry: Entry = { sessions: subjectKeys.sessions, revoked: subjectKeys.revoked, checkedAt: now }
        const registration: [number, number, number, string, number] = [now, leaseMs, settings.maxSessionsPerSubject, session.id, session.issuedAt]
        // Indexed before the script runs: a revocation announced while it is in flight (stored
        // just after the script read the key) still finds the session and ends it.
        local.add(session, tag)
        const [outcome, retryAfterMs] = yield* call(() =>
          opening === undefined
            ? OPEN.run(redis, [entry.sessions, entry.revoked], registration)
            : OPEN.run(
              redis,
              [entry.sessions, entry.revoked, subjectKeys.ticket(opening.jti), subjectKeys.connects],
              [...registration, opening.connect.limit, opening.connect.windowMs]
            )
        ).pipe(Effect.tapError(() => Effect.sync(() => local.remove(tag, session))))
        if (outcome !== 1) {
          local.remove(tag, session)
          return yield* Effect.fail(refusal(outcome, retryAfterMs))
        }
        entries.set(session, entry)
        return releaseOf(session, tag, entry.sessions)
      }))

    // Made apart from `hold`: a closure there would keep its whole scope (the ticket's keys, the
    // script's arguments) for as long as the session lives.
    const releaseOf = (session: LiveSession, tag: string, sessionsKey: string) =>
      Effect.suspend(() => {
        local.remove(tag, session)
        entries.delete(session)
        return call(() => redis.zrem(sessionsKey, session.id)).pipe(Effect.ignore)
      })

    return Sessions.of({
      register: (session) => hold(session, undefined, (outcome) => outcome === -1 ? new SessionRevoked() : new TooManySessions()),
      open: (session, jti, connect) =>
        hold(session, { jti, connect }, (outcome, retryAfterMs) =>
          outcome === -2
            ? new TicketRejected({ cause: "used" })
            : outcome === -1
            ? new TicketRejected({ cause: "revoked" })
            : outcome === -3
            ? new RateLimited({ scope: connect.scope, retryAfterMs })
            : new TooManySessions()),
      revoke: (subject, atMs) =>
        Effect.suspend(() => {
          const named = keys.subject(subject)
          return call(() => redis.set(named.revoked, String(atMs), "EX", REVOCATION_TTL_S)).pipe(
            Effect.andThen(control.publish({ t: "revoke", s: named.tag }, "sessions"))
          )
        }),
      revokedAt: (subject) =>
        call(() => redis.get(keys.subject(subject).revoked)).pipe(Effect.map((at) => (at === null ? undefined : Number(at)))),
      local: (subject) => local.of(subject),
      everyLocal: () => local.all()
    })
  })
)

export const layer = layerWith(LEASE)
