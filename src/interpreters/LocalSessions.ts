// This node's live sessions, indexed by a key of their subject: one registry for every Sessions
// interpreter. The key function is the interpreter's: memory indexes by the subject itself,
// Redis by the pseudonym its revocation announcements carry, so an announcement finds its sessions.
import type { Subject } from "../domain/Principal.ts"
import type { LiveSession } from "../services/Sessions.ts"

export class LocalSessions {
  private readonly byKey = new Map<string, Set<LiveSession>>()
  private readonly keyOf: (subject: Subject) => string

  constructor(keyOf: (subject: Subject) => string) {
    this.keyOf = keyOf
  }

  /**
   * Adds the session; answers its key, for `remove` (a keyed hash need not be made twice).
   * `known` is the key when the caller has already made it.
   */
  add(session: LiveSession, known?: string): string {
    const key = known ?? this.keyOf(session.subject)
    const sessions = this.byKey.get(key)
    if (sessions === undefined) this.byKey.set(key, new Set([session]))
    else sessions.add(session)
    return key
  }

  remove(key: string, session: LiveSession) {
    const sessions = this.byKey.get(key)
    if (sessions === undefined) return
    sessions.delete(session)
    if (sessions.size === 0) this.byKey.delete(key)
  }

  /** The sessions under a key, as announcements name them. */
  withKey(key: string): ReadonlyArray<LiveSession> {
    const sessions = this.byKey.get(key)
    return sessions === undefined ? [] : [...sessions]
  }

  /** The subject's sessions on this node. */
  of(subject: Subject): ReadonlyArray<LiveSession> {
    return this.withKey(this.keyOf(subject))
  }

  /** How many sessions the subject has on this node. */
  count(subject: Subject): number {
    return this.byKey.get(this.keyOf(subject))?.size ?? 0
  }

  all(): ReadonlyArray<LiveSession> {
    const all: Array<LiveSession> = []
    for (const sessions of this.byKey.values()) for (const session of sessions) all.push(session)
    return all
  }
}
