// The event bus on Redis. Publishing is one Lua script per event: idempotency record, the
// channel's epoch (made if missing) and next seq, bounded history and SPUBLISH, all on the
// channel's hash slot, so seq order is delivery order across every node. A message is
// "<seq>|<event json>", the json carrying the epoch: every node knows it without a read.
// Each subscription follows the channel with the shared rules (interpreters/Follower.ts):
// after the subscriber connection drops and comes back it catches up from history or resets.
import { Effect, Layer } from "effect"
import type { Channel } from "../../domain/Channel.ts"
import type { Event } from "../../domain/Event.ts"
import { HISTORY_PER_CHANNEL, IDEMPOTENCY_TTL_S } from "../../domain/Limits.ts"
import { EPOCH_PATTERN, type Position, replay } from "../../domain/Position.ts"
import { EventBus, type Published } from "../../services/EventBus.ts"
import { type ChannelStore, follow, newEpoch } from "../Follower.ts"
import { attempt, RedisClient } from "./Client.ts"
import { Keys } from "./Keys.ts"
import * as Script from "./Script.ts"
import { RedisSubscriber } from "./Subscriber.ts"

/** History lives as long as idempotency records do: a day. */
const HISTORY_TTL_S = IDEMPOTENCY_TTL_S

// KEYS: seq, history, idempotency, epoch. ARGV: pub/sub name, event json (no seq, no epoch),
// history size, ttl, id, candidate epoch.
// The epoch is made here when missing, in the same step as the seq, so the two never disagree;
// one made by a subscribe (with a TTL, for a channel that may never see an event) is kept for good.
// SPUBLISH: the pub/sub name carries the channel's hash tag, so it is in the same slot as the keys.
// Returns {fresh (1|0), seq, id, epoch}: a repeat gets the first publish's seq, id and epoch.
export const PUBLISH = Script.make<[seq: string, history: string, idempotency: string, epoch: string], [name: string, json: string, historySize: number, ttl: number, id: string, candidate: string], [number, number, string, string]>(`
local previous = redis.call('GET', KEYS[3])
if previous then
  local bar = string.find(previous, '|', 1, true)
  local seq = tonumber(string.sub(previous, 1, bar - 1))
  local rest = string.sub(previous, bar + 1)
  local second = string.find(rest, '|', 1, true)
  if second then
    return {0, seq, string.sub(rest, 1, second - 1), string.sub(rest, second + 1)}
  end
  -- A record written by a v1 node: "<seq>|<id>".
  return {0, seq, rest, redis.call('GET', KEYS[4]) or ''}
end
local epoch = redis.call('GET', KEYS[4])
if epoch then
  redis.call('PERSIST', KEYS[4])
else
  epoch = ARGV[6]
  redis.call('SET', KEYS[4], epoch)
end
local seq = redis.call('INCR', KEYS[1])
local message = seq .. '|{"epoch":"' .. epoch .. '",' .. string.sub(ARGV[2], 2)
redis.call('LPUSH', KEYS[2], message)
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
redis.call('SET', KEYS[3], seq .. '|' .. ARGV[5] .. '|' .. epoch, 'EX', tonumber(ARGV[4]))
redis.call('SPUBLISH', ARGV[1], message)
return {1, seq, ARGV[5], epoch}
`)

// KEYS: epoch, seq, history. ARGV: candidate epoch, ttl, "1" to read the history too.
// The head, made if missing: a channel without events gets the epoch its first publish will
// use (expiring unless that publish comes), so a client that saved (epoch, 0) is not reset by it.
const HEAD = Script.make<[epoch: string, seq: string, history: string], [candidate: string, ttl: number, withHistory: string], [string, number, Array<string>?]>(`
local epoch = redis.call('GET', KEYS[1])
local seq = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[1]
  if seq then
    redis.call('SET', KEYS[1], epoch)
  else
    redis.call('SET', KEYS[1], epoch, 'EX', tonumber(ARGV[2]))
  end
end
if ARGV[3] == '1' then
  return {epoch, tonumber(seq or '0'), redis.call('LRANGE', KEYS[3], 0, -1)}
end
return {epoch, tonumber(seq or '0')}
`)

// KEYS: epoch, seq. ARGV: the epoch to retire, candidate. Compare-and-set: only the first of
// the nodes that detect one rollback retires the epoch; the others find it done and agree.
const ROTATE = Script.make<[epoch: string, seq: string], [expected: string, candidate: string], [string, number]>(`
local epoch = redis.call('GET', KEYS[1])
if (not epoch) or epoch == ARGV[1] then
  epoch = ARGV[2]
  redis.call('SET', KEYS[1], epoch)
end
return {epoch, tonumber(redis.call('GET', KEYS[2]) or '0')}
`)

/**
 * "<seq>|<json>" → Event, or undefined for anything malformed. A message without an epoch
 * (published by a v1 node during an upgrade) is taken as of `fallbackEpoch`.
 */
export const decodeMessage = (channel: Channel, message: string, fallbackEpoch: string): Event | undefined => {
  const bar = message.indexOf("|")
  const seq = Number(message.slice(0, bar))
  if (bar < 1 || !Number.isSafeInteger(seq)) return undefined
  try {
    const body = JSON.parse(message.slice(bar + 1)) as Omit<Event, "seq" | "channel">
    const epoch = typeof body.epoch === "string" && EPOCH_PATTERN.test(body.epoch) ? body.epoch : fallbackEpoch
    return { id: body.id, channel, kind: body.kind, ref: body.ref, at: body.at, epoch, seq }
  } catch {
    return undefined
  }
}

const decodeAll = (channel: Channel, messages: ReadonlyArray<string>, epoch: string): Array<Event> =>
  messages.map((m) => decodeMessage(channel, m, epoch)).filter((e): e is Event => e !== undefined)

export const layer = Layer.effect(
  EventBus,
  Effect.gen(function*() {
    const redis = (yield* RedisClient).commands
    const subscriber = yield* RedisSubscriber
    const call = attempt("event-bus")

    const read = (channel: Channel, withHistory: boolean) =>
      call(() =>
        HEAD.run(
          redis,
          [Keys.epoch(channel), Keys.seq(channel), Keys.history(channel)],
          [newEpoch(), HISTORY_TTL_S, withHistory ? "1" : "0"]
        )
      ).pipe(Effect.map(([epoch, seq, history]) => {
        const head: Position = { epoch, seq }
        return { head, history: decodeAll(channel, history ?? [], epoch) }
      }))

    const store = (channel: Channel): ChannelStore => ({
      read: read(channel, true),
      rotate: (expected) =>
        call(() => ROTATE.run(redis, [Keys.epoch(channel), Keys.seq(channel)], [expected, newEpoch()])).pipe(
          Effect.map(([epoch, seq]): Position => ({ epoch, seq }))
        )
    })

    return EventBus.of({
      publish: (draft, idempotencyKey) =>
        call(() =>
          PUBLISH.run(redis, [
            Keys.seq(draft.channel),
            Keys.history(draft.channel),
            Keys.idempotency(draft.channel, idempotencyKey),
            Keys.epoch(draft.channel)
          ], [
            Keys.events(draft.channel),
            JSON.stringify({ id: draft.id, kind: draft.kind, ref: draft.ref, at: draft.at }),
            HISTORY_PER_CHANNEL,
            HISTORY_TTL_S,
            draft.id,
            newEpoch()
          ])
        ).pipe(
          Effect.map(([fresh, seq, id, epoch]): Published => ({
            id: id as Published["id"],
            channel: draft.channel,
            epoch,
            seq,
            fresh: fresh === 1
          }))
        ),
      subscribe: (channel, listener) =>
        Effect.gen(function*() {
          const follower = yield* follow(store(channel), listener)
          yield* subscriber.listen(Keys.events(channel), (message) => {
            const event = decodeMessage(channel, message, follower.position().epoch)
            if (event !== undefined) follower.receive(event)
          })
          // Read once the subscription is live: any later event is sure to reach the follower,
          // so this head is one a subscriber can be told without a read of its own.
          follower.start((yield* read(channel, false)).head)
          yield* subscriber.onReconnect(() => follower.catchUp())
          return () => follower.position()
        }),
      head: (channel) => Effect.map(read(channel, false), ({ head }) => head),
      since: (channel, from) => Effect.map(read(channel, true), ({ head, history }) => replay(head, history, from))
    })
  })
)
