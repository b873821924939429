// The Redis session registry's leases in real time, with a lease short enough to watch run
// out: a node's renewals keep its sessions counted against the per-subject cap for as long
// as they live, and a node that stops renewing (it crashed) has its sessions age out.
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { LiveSession } from "../../src/services/Sessions.ts"
import { Sessions } from "../../src/services/Sessions.ts"
import { sessionsNode, useRedisTarget } from "../support/redis-target.ts"
import { hasRedisServer, skipReason } from "../support/redis.ts"
import { fresh, freshSubject } from "./support.ts"

const LEASE = { leaseMs: 600, refreshMs: 150, graceMs: 450 }

// Renewals go out as one script per slice on a single Redis, one per hash slot on a cluster:
// both ways are run.
const targets = ["single", "cluster"] as const

describe.skipIf(!hasRedisServer).each(targets)(`Redis session leases (%s)${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, (kind) => {
  const redis = useRedisTarget(kind)

  const node = () => sessionsNode(redis.target, LEASE)

  const session = (subject: LiveSession["subject"]): LiveSession => ({
    id: fresh("ses"),
    subject,
    openedAt: 0,
    issuedAt: 0,
    end: () => undefined,
    reauthorize: () => undefined,
    reauthorizeAll: () => undefined,
    recheckCare: () => undefined
  })

  it.live("keeps a subject's sessions counted past the lease while their node renews them", () =>
    Effect.gen(function*() {
      const sessions = yield* Sessions
      const subject = freshSubject()
      yield* sessions.register(session(subject))
      yield* sessions.register(session(subject))
      // Three leases long: only the renewals keep the registrations (and their key) alive.
      yield* Effect.sleep(LEASE.leaseMs * 3)
      const third = yield* Effect.flip(sessions.register(session(subject)))
      expect(third._tag).toBe("TooManySessions")
    }).pipe(Effect.provide(node())))

  it.live("lets a stopped node's sessions age out after the lease", () =>
    Effect.gen(function*() {
      const subject = freshSubject()
      // Node A registers two sessions and stops (its layer closes) without releasing them,
      // as a crash would: its renewals end with it.
      yield* Effect.gen(function*() {
        const sessions = yield* Sessions
        yield* sessions.register(session(subject))
        yield* sessions.register(session(subject))
        expect((yield* Effect.flip(sessions.register(session(subject))))._tag).toBe("TooManySessions")
      }).pipe(Effect.provide(node()))
      yield* Effect.sleep(LEASE.leaseMs + 300)
      // Node B: the cap has room again.
      yield* Effect.gen(function*() {
        const sessions = yield* Sessions
        yield* sessions.register(session(subject))
        yield* sessions.register(session(subject))
      }).pipe(Effect.provide(node()))
    }))
})
