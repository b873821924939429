// Every Redis key and pub/sub channel name Tidings uses, in one place. A channel's keys share
// one hash tag, so on Redis Cluster its seq, history and idempotency records sit in one slot
// and the publish script stays atomic; so do a subject's (tickets, sessions, revocation, connect
// bucket), so one script opens a session. Subject refs are hashed before they become key names.
import { createHash } from "node:crypto"
import { type Channel, print } from "../../domain/Channel.ts"

export const PREFIX = "tdg"

/** A subject ref as it appears in key names and control messages: never the raw ref. */
export const subjectTag = (subject: string): string =>
  createHash("sha256").update(`tidings/subject/${subject}`).digest("hex").slice(0, 32)

const tag = (channel: Channel) => `{${print(channel)}}`
/** A subject's hash tag: all its keys sit in one slot. */
const subjectSlot = (subject: string) => `{${subjectTag(subject)}}`

export const Keys = {
  /** In its subject's slot: the session's opening script takes it (Sessions.ts). */
  ticket: (subject: string, jti: string) => `${PREFIX}:ticket:${subjectSlot(subject)}:${jti}`,
  seq: (channel: Channel) => `${PREFIX}:${tag(channel)}:seq`,
  /** The life of the channel's seq (domain/Position.ts); lost with it, since they share a slot. */
  epoch: (channel: Channel) => `${PREFIX}:${tag(channel)}:epoch`,
  history: (channel: Channel) => `${PREFIX}:${tag(channel)}:history`,
  idempotency: (channel: Channel, key: string) => `${PREFIX}:${tag(channel)}:idem:${key}`,
  /** The pub/sub channel that carries a channel's events (same slot as its keys). */
  events: (channel: Channel) => `${PREFIX}:${tag(channel)}:events`,
  care: (clinician: string) => `${PREFIX}:care:${subjectSlot(clinician)}`,
  sessions: (subject: string) => `${PREFIX}:sessions:${subjectSlot(subject)}`,
  revoked: (subject: string) => `${PREFIX}:revoked:${subjectSlot(subject)}`,
  /** The subject's connect token bucket, taken by the session's opening script. */
  connects: (subject: string) => `${PREFIX}:rate:${subjectSlot(subject)}:connect`,
  rate: (key: string) => `${PREFIX}:rate:${createHash("sha256").update(key).digest("hex").slice(0, 32)}`,
  /** One node's audit chain, as a stream (node ids are configuration, never caller input). */
  audit: (node: string) => `${PREFIX}:audit:{${node}}`,
  /** Revocations and care-relationship changes, heard by every node. */
  control: `${PREFIX}:control`
} as const
