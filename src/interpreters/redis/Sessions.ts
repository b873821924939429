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

/** How long a registration lives without its node refreshing it, and how often it does. */
export interface Lease {
  readonly leaseMs: number
  readonly refreshMs: number
}

export const LEASE: Lease = { leaseMs: 60_000, refreshMs: 20_000 }

// KEYS: sessions. ARGV: now, lease ms, cap, session id. Returns 1 when registered.
const REGISTER = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`

// KEYS: the sessions sets of some subjects. ARGV: expiry, lease ms, then one session id per key.
// Renews each member that is still there (CH: its score moved), and its set with it: renewing
// only the member would leave the set to expire a lease after its last registration, and the
// cap with it.
const RENEW = `
for i, key in ipairs(KEYS) do
  if redis.call('ZADD', key, 'XX', 'CH', ARGV[1], ARGV[i + 2]) == 1 then
    redis.call('PEXPIRE', key, ARGV[2])
  end
end
return #KEYS
`

interface Scripted {
  tidingsRegister(key: string, now: number, lease: number, cap: number, id: string): Promise<number>
  tidingsRenew(...keysThenArgs: Array<string | number>): Promise<number>
}

/** Renewals sent before the renewing fiber waits for their answers and lets other work run. */
const RENEW_SLICE = 1_000

export const layerWith = ({ leaseMs, refreshMs }: Lease) => Layer.effect(
  Sessions,
  Effect.gen(function*() {
    const client = yield* RedisClient
    const redis = client.commands
    const subscriber = yield* RedisSubscriber
    const settings = yield* Settings
    redis.defineCommand("tidingsRegister", { numberOfKeys: 1, lua: REGISTER })
    // The number of keys varies per call: it is given as the first argument.
    redis.defineCommand("tidingsRenew", { lua: RENEW })
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
          const slice = all.slice(start, start + RENEW_SLICE)
          // One script per slice on a single Redis; on a cluster the subjects' sets live in
          // many slots, so one per session (auto-pipelined).
          const renewals = client.cluster
            ? slice.map(([session, key]) => scripted.tidingsRenew(1, key, now + leaseMs, leaseMs, session.id))
            : [scripted.tidingsRenew(slice.length, ...slice.map(([, key]) => key), now + leaseMs, leaseMs, ...slice.map(([session]) => session.id))]
          yield* call(() => Promise.all(renewals)).pipe(Effect.ignore)
        }
      }).pipe(Effect.andThen(Effect.sleep(refreshMs)), Effect.forever)
    )

    return Sessions.of({
      register: (session) =>
        // Uninterruptible, as an acquire: a session is registered with its release, or not at all.
        Effect.uninterruptible(Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const key = Keys.sessions(session.subject)
          const ok = yield* call(() => scripted.tidingsRegister(key, now, leaseMs, settings.maxSessionsPerSubject, session.id))
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

export const layer = layerWith(LEASE)
