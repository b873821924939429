// Every Redis key and pub/sub channel name Tidings uses, in one place. Whatever names a channel,
// a subject, a ticket or a rate bucket is a keyed pseudonym (DataKey.ts), never the raw text nor
// an unkeyed hash. A channel's keys share one hash tag, its pseudonym, so on Redis Cluster its
// seq, epoch, history and idempotency records sit in one slot and the publish script stays atomic;
// so do a subject's (tickets, sessions, revocation, connect bucket), so one script opens a session.
import { type Channel, print } from "../../domain/Channel.ts"

export const PREFIX = "tdg"

/** The keys that name nothing of anyone: configuration and the cluster's own bookkeeping. */
export const Keys = {
  /** One node's audit chain, as a stream (node ids are configuration, never caller input). */
  audit: (node: string) => `${PREFIX}:audit:{${node}}`,
  /** Revocations and care-relationship changes (as pseudonyms), heard by every node. */
  control: `${PREFIX}:control`,
  /** The id of the data key the cluster names things with (DataKey.ts): one short value. */
  keyCheck: `${PREFIX}:keycheck`
} as const

/** One channel's keys, named once per operation (one HMAC) from its pseudonym `tag`. */
export interface ChannelKeys {
  /** The channel's pseudonym: its hash tag, and the associated data its sealed values are bound to. */
  readonly tag: string
  readonly seq: string
  /** The life of the channel's seq (domain/Position.ts); lost with it, since they share a slot. */
  readonly epoch: string
  readonly history: string
  /** The pub/sub channel that carries the channel's events (same slot as its keys). */
  readonly events: string
}

/** A subject's keys under its pseudonym, in one slot: tickets, live sessions, revocation, connect bucket. */
export interface SubjectKeys {
  readonly tag: string
  /** A ticket issued to the subject, by its jti's pseudonym: the session's opening script takes it. */
  readonly ticket: (jti: string) => string
  readonly sessions: string
  readonly revoked: string
  /** The subject's connect token bucket, taken by the session's opening script. */
  readonly connects: string
}

/**
 * Channels' pseudonyms are asked for on every publish, mostly of channels seen moments ago: the
 * last few thousand are kept (first in, first out), which spares an HMAC per publish for a few
 * hundred KiB at most. The names they stand for are in this process's memory anyway.
 */
const CHANNEL_TAGS_REMEMBERED = 4096

const remembered = (pseudonym: (printed: string) => string, max: number) => {
  const known = new Map<string, string>()
  return (channel: Channel): string => {
    const printed = print(channel)
    const hit = known.get(printed)
    if (hit !== undefined) return hit
    const tag = pseudonym(printed)
    if (known.size >= max) known.delete(known.keys().next().value!)
    known.set(printed, tag)
    return tag
  }
}

/** Key names under a names function (DataKeys.name); each kind of name has its own label. */
export const named = (name: (text: string) => string) => {
  const channelTag = remembered((printed) => name(`c/${printed}`), CHANNEL_TAGS_REMEMBERED)
  const subjectTag = (subject: string) => name(`s/${subject}`)
  const channelKeys = (tag: string): ChannelKeys => ({
    tag,
    seq: `${PREFIX}:{${tag}}:seq`,
    epoch: `${PREFIX}:{${tag}}:epoch`,
    history: `${PREFIX}:{${tag}}:history`,
    events: `${PREFIX}:{${tag}}:events`
  })
  return {
    channelTag,
    subjectTag,
    channel: (channel: Channel): ChannelKeys => channelKeys(channelTag(channel)),
    /** The same keys from a pseudonym already known (a control message, a pub/sub name). */
    channelOfTag: channelKeys,
    /** Idempotency record of `key` (service and event id) on the channel, in its slot. */
    idempotency: (keys: ChannelKeys, key: string) => `${PREFIX}:{${keys.tag}}:idem:${name(`i/${keys.tag}/${key}`)}`,
    subject: (subject: string): SubjectKeys => {
      const tag = subjectTag(subject)
      return {
        tag,
        ticket: (jti) => `${PREFIX}:ticket:{${tag}}:${name(`t/${jti}`)}`,
        sessions: `${PREFIX}:sessions:{${tag}}`,
        revoked: `${PREFIX}:revoked:{${tag}}`,
        connects: `${PREFIX}:rate:{${tag}}:connect`
      }
    },
    /** A clinician's care relationships: fields are the patients' channel pseudonyms. */
    care: (clinician: string) => `${PREFIX}:care:{${subjectTag(clinician)}}`,
    /** The same from the clinician's pseudonym, already known. */
    careOfTag: (tag: string) => `${PREFIX}:care:{${tag}}`,
    rate: (key: string) => `${PREFIX}:rate:${name(`r/${key}`)}`,
    /** A publishing service's storage counts, one hash per hour, all in its pseudonym's slot. */
    quota: (service: string) => {
      const tag = name(`q/${service}`)
      return (hour: number) => `${PREFIX}:quota:{${tag}}:${hour}`
    }
  }
}

export type NamedKeys = ReturnType<typeof named>
