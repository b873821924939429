// The session registry on Redis. Each subject has a sorted set of live session ids scored by
// expiry, refreshed by their node, so the per-subject cap holds across nodes and a crashed
// node's sessions age out. Revocation stores its time and is announced to every node.
import { Clock, Effect, Layer } from "effect"
import { SessionRevoked, TooManySessions } from "../../domain/Errors.ts"
import { REVOCATION_TTL_S } from "../../domain/Limits.ts"
import { type LiveSession, Sessions } from "../../services/Sessions.ts"
import { Settings } from "../../services/Settings.ts"
import { attempt, RedisClient } from "./Client.ts"
import * as Control from "./Control.ts"
import { Keys, subjectTag } from "./Keys.ts"
import { RedisSubscriber } from "./Subscriber.ts"

/** How long a registration lives without its node refreshing it. */
const LEASE_MS = 60_000
const REFRESH_MS = 20_000

// KEYS: sessions. ARGV: now, lease ms, cap, session id. Returns 1 when registered.
const REGISTER = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`

interface Scripted {
  tidingsRegister(key: string, now: number, lease: number, cap: number, id: string): Promise<number>
}

/** Renewals sent before the renewing fiber waits for their answers and lets other work run. */
const RENEW_SLICE = 1_000

export const layer = Layer.effect(
  Sessions,
  Effect.gen(function*() {
    const redis = (yield* RedisClient).commands
    const subscriber = yield* RedisSubscriber
    const settings = yield* Settings
    redis.defineCommand("tidingsRegister", { numberOfKeys: 1, lua: REGISTER })
    const scripted = redis as unknown as Scripted
    const call = attempt("sessions")

    // This node's sessions, by hashed subject (what control messages carry) and by raw ref.
    const local = new Map<string, Set<LiveSession>>()

    yield* subscriber.listen(Keys.control, "broadcast", (text) => {
      const message = Control.decode(text)
      if (message?.t !== "revoke") return
      for (const session of local.get(message.s) ?? []) session.end(new SessionRevoked())
    })

    // Revocations announced while the subscriber was reconnecting were never heard: ask Redis.
    const runFork = Effect.runForkWith(yield* Effect.context<never>())
    yield* subscriber.onReconnect(() => {
      for (const sessions of local.values()) {
        for (const session of sessions) {
          runFork(call(() => redis.get(Keys.revoked(session.subject))).pipe(
            Effect.map((at) => {
              if (at !== null && Number(at) >= session.openedAt) session.end(new SessionRevoked())
            }),
            Effect.ignore
          ))
        }
      }
    })

    // Each local session's key, hashed once at registration rather than at every renewal.
    const leaseKeys = new Map<LiveSession, string>()

    // Renew every local registration well before its lease runs out, a slice at a time: one
    // burst for 100,000 sessions would hold the event loop (and every socket) for a second.
    yield* Effect.forkScoped(
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const all = [...leaseKeys]
        for (let start = 0; start < all.length; start += RENEW_SLICE) {
          // One command per session (auto-pipelined): on a cluster, subjects live in many slots.
          const slice = all.slice(start, start + RENEW_SLICE).map(([session, key]) => redis.zadd(key, "XX", now + LEASE_MS, session.id))
          yield* call(() => Promise.all(slice)).pipe(Effect.ignore)
        }
      }).pipe(Effect.andThen(Effect.sleep(REFRESH_MS)), Effect.forever)
    )

    return Sessions.of({
      register: (session) =>
        // Uninterruptible, as an acquire: a session is registered with its release, or not at all.
        Effect.uninterruptible(Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const key = Keys.sessions(session.subject)
          const ok = yield* call(() => scripted.tidingsRegister(key, now, LEASE_MS, settings.maxSessionsPerSubject, session.id))
          if (ok !== 1) return yield* new TooManySessions()
          leaseKeys.set(session, key)
          const tag = subjectTag(session.subject)
          const mine = local.get(tag) ?? new Set()
          mine.add(session)
          local.set(tag, mine)
          return Effect.suspend(() => {
            const mine = local.get(tag)
            mine?.delete(session)
            if (mine?.size === 0) local.delete(tag)
            leaseKeys.delete(session)
            return call(() => redis.zrem(key, session.id)).pipe(Effect.ignore)
          })
        })),
      revoke: (subject, atMs) =>
        call(() => redis.set(Keys.revoked(subject), String(atMs), "EX", REVOCATION_TTL_S)).pipe(
          Effect.andThen(Control.publish(redis, { t: "revoke", s: subjectTag(subject) }, "sessions"))
        ),
      revokedAt: (subject) =>
        call(() => redis.get(Keys.revoked(subject))).pipe(Effect.map((at) => (at === null ? undefined : Number(at)))),
      local: (subject) => [...(local.get(subjectTag(subject)) ?? [])],
      everyLocal: () => [...local.values()].flatMap((sessions) => [...sessions])
    })
  })
)
