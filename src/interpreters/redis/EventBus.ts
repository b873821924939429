// The event bus on Redis. Publishing is one Lua script per event: idempotency record, the
// channel's epoch (made if missing) and next seq, bounded history and SPUBLISH, all on the
// channel's hash slot, so seq order is delivery order across every node. Redis sees only the
// channel's pseudonym and sealed values (DataKey.ts): a message is "<seq>|<epoch>|<ms>|<sealed
// event>", sealed once per publish and opened once per node, bound to the channel's pseudonym.
// Each subscription follows the channel with the shared rules (interpreters/Follower.ts):
// after the subscriber connection drops and comes back it catches up from history or resets.
import { Clock, Effect, Layer, Result } from "effect"
import type { Channel } from "../../domain/Channel.ts"
import type { Event, EventDraft } from "../../domain/Event.ts"
import { Unavailable } from "../../domain/Errors.ts"
import { HISTORY_PER_CHANNEL, IDEMPOTENCY_TTL_S } from "../../domain/Limits.ts"
import { EPOCH_PATTERN, type Position, replay } from "../../domain/Position.ts"
import { EventBus, type Published } from "../../services/EventBus.ts"
import { type ChannelStore, followWithStop, newEpoch } from "../Follower.ts"
import { attempt, RedisClient } from "./Client.ts"
import { DataKeys } from "./DataKey.ts"
import { type ChannelKeys, named } from "./Keys.ts"
import * as Script from "./Script.ts"
import { groupBySlot } from "./Slots.ts"
import { RedisSubscriber } from "./Subscriber.ts"

/**
 * How long an event is kept and served (history, per entry), an `id` remembered, and an idle
 * channel's seq and epoch live: a day. Entries older than that are never served, and are
 * erased at the channel's next publish or read, or with the channel's keys a day after its last.
 */
export const RETENTION_S = IDEMPOTENCY_TTL_S

// Shared by the scripts: drops history entries older than the cutoff (ms) from the list's old
// end ("<seq>|<epoch>|<ms>|…"; an entry of another shape, from a v1 node, is old too).
const PRUNE = `
local function prune(history, cutoff)
  for _ = 1, 1000 do
    local last = redis.call('LINDEX', history, -1)
    if not last then return end
    local ms = tonumber(string.match(last, '^%d+|[^|]*|(%d+)|'))
    if ms and ms >= cutoff then return end
    redis.call('RPOP', history)
  end
end
-- A set epoch lives as long as the seq beside it (both expire together, a day after the last event).
local function keep_with_seq(epoch, seq)
  local ttl = redis.call('PTTL', seq)
  if ttl > 0 then redis.call('PEXPIRE', epoch, ttl) end
end
`

// KEYS: seq, history, idempotency, epoch. ARGV: pub/sub name, sealed event, history size,
// retention (s), sealed id, candidate epoch, now (ms).
// The epoch is made here when missing, in the same step as the seq, so the two never disagree;
// seq, epoch and history expire a retention after the channel's last event, together, so a
// channel that comes back after a quiet day starts a new epoch (its clients are reset).
// One publish, shared by PUBLISH and PUBLISH_MANY. SPUBLISH: the pub/sub name carries the
// channel's hash tag, so it is in the same slot as the keys. Answers {fresh (1|0), seq, sealed
// id, epoch}: a repeat gets the first publish's seq, id and epoch.
const PUBLISH_ONE = PRUNE + `
local function publish_one(kseq, khistory, kidem, kepoch, name, sealed, size, ttl, id, candidate, now)
  local previous = redis.call('GET', kidem)
  if previous then
    local seq, first, epoch = string.match(previous, '^(%d+)|([^|]*)|(.*)$')
    if seq then return {0, tonumber(seq), first, epoch} end
  end
  local epoch = redis.call('GET', kepoch) or candidate
  local seq = redis.call('INCR', kseq)
  redis.call('SET', kepoch, epoch, 'EX', ttl)
  redis.call('EXPIRE', kseq, ttl)
  local message = seq .. '|' .. epoch .. '|' .. now .. '|' .. sealed
  redis.call('LPUSH', khistory, message)
  redis.call('LTRIM', khistory, 0, size - 1)
  prune(khistory, tonumber(now) - ttl * 1000)
  redis.call('EXPIRE', khistory, ttl)
  redis.call('SET', kidem, seq .. '|' .. id .. '|' .. epoch, 'EX', ttl)
  redis.call('SPUBLISH', name, message)
  return {1, seq, id, epoch}
end
`

export const PUBLISH = Script.make<
  [seq: string, history: string, idempotency: string, epoch: string],
  [name: string, sealed: string, historySize: number, retention: number, id: string, candidate: string, now: number],
  [number, number, string, string]
>(PUBLISH_ONE + `
return publish_one(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7])
`)

/** One draft ready for PUBLISH or PUBLISH_MANY: its keys, and its name, sealed event, sealed id and candidate epoch. */
interface Prepared {
  readonly draft: EventDraft
  readonly tag: string
  readonly keys: [seq: string, history: string, idempotency: string, epoch: string]
  readonly args: [name: string, sealed: string, id: string, candidate: string]
}

/** Keys and arguments of PUBLISH_MANY per item, after its three shared arguments. */
const KEYS_PER_ITEM = 4
const ARGS_PER_ITEM = 4

// Several publishes in one call, in the order given (a batch's items of one slot: on a Cluster
// every key of one call must be in one slot). KEYS: per item seq, history, idempotency, epoch.
// ARGV: history size, retention (s), now (ms), then per item name, sealed, id, candidate.
// Answers PUBLISH's four values per item, one after another.
export const PUBLISH_MANY = Script.make<ReadonlyArray<string>, ReadonlyArray<string | number>, Array<number | string>>(PUBLISH_ONE + `
local size, ttl, now = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local out = {}
for i = 0, #KEYS / ${KEYS_PER_ITEM} - 1 do
  local k, a = i * ${KEYS_PER_ITEM}, 3 + i * ${ARGS_PER_ITEM}
  local r = publish_one(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], ARGV[a + 1], ARGV[a + 2], size, ttl, ARGV[a + 3], ARGV[a + 4], now)
  for j = 1, 4 do out[#out + 1] = r[j] end
end
return out
`)

// KEYS: epoch, seq, history. ARGV: candidate epoch, retention (s), "1" to read the history
// too, now (ms). The head, made if missing: a channel without events gets the epoch its first
// publish will use (expiring unless that publish comes), so a client that saved (epoch, 0) is
// not reset by it.
const HEAD = Script.make<
  [epoch: string, seq: string, history: string],
  [candidate: string, retention: number, withHistory: string, now: number],
  [string, number, Array<string>?]
>(PRUNE + `
local epoch = redis.call('GET', KEYS[1])
local seq = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch, 'EX', tonumber(ARGV[2]))
  if seq then keep_with_seq(KEYS[1], KEYS[2]) end
end
if ARGV[3] == '1' then
  prune(KEYS[3], tonumber(ARGV[4]) - tonumber(ARGV[2]) * 1000)
  return {epoch, tonumber(seq or '0'), redis.call('LRANGE', KEYS[3], 0, -1)}
end
return {epoch, tonumber(seq or '0')}
`)

// KEYS: epoch, seq. ARGV: the epoch to retire, candidate, retention (s). Compare-and-set: only
// the first of the nodes that detect one rollback retires the epoch; the others find it done.
const ROTATE = Script.make<[epoch: string, seq: string], [expected: string, candidate: string, retention: number], [string, number]>(
  PRUNE + `
local epoch = redis.call('GET', KEYS[1])
if (not epoch) or epoch == ARGV[1] then
  epoch = ARGV[2]
  redis.call('SET', KEYS[1], epoch, 'EX', tonumber(ARGV[3]))
  keep_with_seq(KEYS[1], KEYS[2])
end
return {epoch, tonumber(redis.call('GET', KEYS[2]) or '0')}
`)

/** The parts of a message; undefined for anything of another shape (a v1 node's, say). */
const split = (message: string) => {
  const first = message.indexOf("|")
  const second = message.indexOf("|", first + 1)
  const third = message.indexOf("|", second + 1)
  if (first < 1 || second < 0 || third < 0) return undefined
  const seq = Number(message.slice(0, first))
  const epoch = message.slice(first + 1, second)
  const ms = Number(message.slice(second + 1, third))
  if (!Number.isSafeInteger(seq) || !EPOCH_PATTERN.test(epoch) || !Number.isFinite(ms)) return undefined
  return { seq, epoch, ms, sealed: message.slice(third + 1) }
}

type Opener = (scope: string, sealed: string) => string | undefined

/** The event in a message, opened under the channel's pseudonym, or undefined when it does not open. */
export const decodeMessage = (open: Opener, channel: Channel, tag: string, message: string) =>
  decodeParts(open, channel, tag, split(message))

const decodeParts = (
  open: Opener,
  channel: Channel,
  tag: string,
  parts: ReturnType<typeof split>
): { readonly event: Event; readonly ms: number } | undefined => {
  const text = parts === undefined ? undefined : open(tag, parts.sealed)
  if (parts === undefined || text === undefined) return undefined
  try {
    const body = JSON.parse(text) as Pick<Event, "id" | "kind" | "ref" | "at">
    return { event: { id: body.id, channel, kind: body.kind, ref: body.ref, at: body.at, epoch: parts.epoch, seq: parts.seq }, ms: parts.ms }
  } catch {
    return undefined
  }
}

export const layer = Layer.effect(
  EventBus,
  Effect.gen(function*() {
    const { commands: redis, cluster } = yield* RedisClient
    const subscriber = yield* RedisSubscriber
    const data = yield* DataKeys
    const keys = named(data.name)
    const call = attempt("event-bus")

    /**
     * Events of the messages that open and are within the retention, in the order given; with
     * `after`, only those after it in its epoch are opened (a resume needs no more, and a
     * reconnect storm would otherwise open a channel's whole history per session).
     */
    const decodeAll = (channel: Channel, tag: string, messages: ReadonlyArray<string>, now: number, after?: Position): Array<Event> => {
      const cutoff = now - RETENTION_S * 1000
      const events: Array<Event> = []
      for (const message of messages) {
        const parts = split(message)
        if (parts === undefined || parts.ms < cutoff) continue
        if (after !== undefined && (parts.epoch !== after.epoch || parts.seq <= after.seq)) continue
        const decoded = decodeParts(data.open, channel, tag, parts)
        if (decoded !== undefined) events.push(decoded.event)
      }
      return events
    }

    const read = (channel: Channel, at: ChannelKeys, withHistory: boolean, after?: Position) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        call(() =>
          HEAD.run(redis, [at.epoch, at.seq, at.history], [newEpoch(), RETENTION_S, withHistory ? "1" : "0", now])
        ).pipe(Effect.map(([epoch, seq, history]) => {
          const head: Position = { epoch, seq }
          return { head, history: decodeAll(channel, at.tag, history ?? [], now, after) }
        })))

    // A subscription keeps only its channel's pseudonym: the key names are made again on the rare
    // catch-up or rotation, not held (a node holds one subscription per followed channel).
    const store = (channel: Channel, tag: string): ChannelStore => ({
      read: Effect.suspend(() => read(channel, keys.channelOfTag(tag), true)),
      rotate: (expected) =>
        Effect.suspend(() => {
          const at = keys.channelOfTag(tag)
          return call(() => ROTATE.run(redis, [at.epoch, at.seq], [expected, newEpoch(), RETENTION_S]))
        }).pipe(Effect.map(([epoch, seq]): Position => ({ epoch, seq })))
    })

    /** A draft's keys and arguments for the scripts: sealed once, named once. */
    const prepare = (draft: EventDraft, idempotencyKey: string): Prepared => {
      const at = keys.channel(draft.channel)
      const event = JSON.stringify({ id: draft.id, kind: draft.kind, ref: draft.ref, at: draft.at })
      return {
        draft,
        tag: at.tag,
        keys: [at.seq, at.history, keys.idempotency(at, idempotencyKey), at.epoch],
        args: [at.events, data.seal(at.tag, event), data.seal(at.tag, draft.id), newEpoch()]
      }
    }

    // A repeat answers with the first publish's id, sealed: one that does not open (another data
    // key) cannot be answered truthfully, so the bus is unavailable for that item.
    const answered = (item: Prepared, [fresh, seq, sealedId, epoch]: readonly [number, number, string, string]) => {
      const id = fresh === 1 ? item.draft.id : data.open(item.tag, sealedId)
      return id === undefined
        ? Result.fail(new Unavailable({ service: "event-bus" }))
        : Result.succeed<Published>({ id: id as Published["id"], channel: item.draft.channel, epoch, seq, fresh: fresh === 1 })
    }

    const publishGroup = (
      prepared: ReadonlyArray<Prepared>,
      group: ReadonlyArray<number>,
      now: number,
      results: Array<Result.Result<Published, Unavailable>>
    ) =>
      call(() =>
        PUBLISH_MANY.run(
          redis,
          group.flatMap((index) => prepared[index]!.keys),
          [HISTORY_PER_CHANNEL, RETENTION_S, now, ...group.flatMap((index) => prepared[index]!.args)]
        )
      ).pipe(
        Effect.match({
          onFailure: (error) => group.forEach((index) => void (results[index] = Result.fail(error))),
          onSuccess: (flat) =>
            group.forEach((index, n) => {
              const answer = flat.slice(n * 4, n * 4 + 4) as unknown as [number, number, string, string]
              results[index] = answered(prepared[index]!, answer)
            })
        })
      )

    return EventBus.of({
      publish: (draft, idempotencyKey) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const item = prepare(draft, idempotencyKey)
          return call(() => PUBLISH.run(redis, item.keys, [item.args[0], item.args[1], HISTORY_PER_CHANNEL, RETENTION_S, item.args[2], item.args[3], now]))
            .pipe(Effect.flatMap((answer) => Result.match(answered(item, answer), { onSuccess: Effect.succeed, onFailure: Effect.fail })))
        }),
      publishAll: (items) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const prepared = items.map(({ draft, idempotencyKey }) => prepare(draft, idempotencyKey))
          const results: Array<Result.Result<Published, Unavailable>> = new Array(items.length)
          return Effect.as(
            Effect.forEach(
              groupBySlot(cluster, prepared.map((_, index) => index), (index) => prepared[index]!.keys[0]),
              (group) => publishGroup(prepared, group, now, results),
              { concurrency: "unbounded", discard: true }
            ),
            results
          )
        }),
      // One finalizer for everything the subscription set up (the follower, the pub/sub
      // listener, the reconnect hook): each finalizer is memory an idle channel holds.
      subscribe: (channel, listener) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            const tag = keys.channelTag(channel)
            const { follower, stop } = yield* followWithStop(store(channel, tag), listener)
            let unlisten: Effect.Effect<void> = Effect.void
            let unhook = () => {}
            yield* Effect.addFinalizer(() => Effect.andThen(Effect.sync(() => unhook()), Effect.andThen(stop, unlisten)))
            unlisten = yield* subscriber.listen(keys.channelOfTag(tag).events, (message) => {
              const decoded = decodeMessage(data.open, channel, tag, message)
              if (decoded !== undefined) follower.receive(decoded.event)
            })
            // Read once the subscription is live: any later event is sure to reach the follower,
            // so this head is one a subscriber can be told without a read of its own.
            follower.start((yield* restore(read(channel, keys.channelOfTag(tag), false))).head)
            unhook = subscriber.onReconnect(() => follower.catchUp())
            return () => follower.position()
          })
        ),
      head: (channel) => Effect.map(read(channel, keys.channel(channel), false), ({ head }) => head),
      since: (channel, from) =>
        Effect.map(read(channel, keys.channel(channel), true, from), ({ head, history }) => replay(head, history, from))
    })
  })
)
