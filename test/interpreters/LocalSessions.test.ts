// Specifies a node's local-session registry, shared by the memory and Redis Sessions: sessions
// are found by their subject, or by the key the interpreter derives from it (a pseudonym, as
// announcements carry), and leave it one by one.
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { Subject } from "../../src/domain/Principal.ts"
import { LocalSessions } from "../../src/interpreters/LocalSessions.ts"
import type { LiveSession } from "../../src/services/Sessions.ts"

const session = (id: string, subject: string): LiveSession => ({
  id,
  subject: subject as Subject,
  openedAt: 0,
  issuedAt: 0,
  end: () => undefined,
  reauthorize: () => undefined,
  reauthorizeAll: () => undefined,
  recheckCare: () => Effect.void
})

describe("LocalSessions", () => {
  const pseudonym = (subject: Subject) => `p-${subject.length}-${subject.slice(-4)}`

  it("finds a subject's sessions by the subject and by the key the interpreter derives", () => {
    const local = new LocalSessions(pseudonym)
    const a1 = session("s1", "patient:pt_alice_0001")
    const a2 = session("s2", "patient:pt_alice_0001")
    const b = session("s3", "patient:pt_bob_00002")
    expect(local.add(a1)).toBe(pseudonym("patient:pt_alice_0001" as Subject))
    local.add(a2)
    local.add(b)
    expect(local.of("patient:pt_alice_0001" as Subject)).toEqual([a1, a2])
    expect(local.withKey(pseudonym("patient:pt_bob_00002" as Subject))).toEqual([b])
    expect(local.count("patient:pt_alice_0001" as Subject)).toBe(2)
    expect(local.all()).toEqual([a1, a2, b])
  })

  it("forgets a session removed under its key, and a subject with none left", () => {
    const local = new LocalSessions((subject) => subject)
    const a1 = session("s1", "patient:pt_alice_0001")
    const a2 = session("s2", "patient:pt_alice_0001")
    const key = local.add(a1)
    local.add(a2)
    local.remove(key, a1)
    expect(local.of("patient:pt_alice_0001" as Subject)).toEqual([a2])
    local.remove(key, a2)
    local.remove(key, a2)
    expect(local.count("patient:pt_alice_0001" as Subject)).toBe(0)
    expect(local.withKey(key)).toEqual([])
    expect(local.all()).toEqual([])
  })
})
