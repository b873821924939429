// The event bus on Redis. Publishing is one Lua script per event: idempotency record, next
// seq, bounded history and PUBLISH, all on the channel's hash slot, so seq order is delivery
// order across every node. A message is "<seq>|<event json>": the seq is added without
// re-encoding, and each node decodes it once for all of its local subscribers.
// Pub/sub delivers at most once: after the subscriber connection drops and comes back, each
// subscription fetches what it missed from the channel's history before going live again.
import { Effect, Layer } from "effect"
import type { Channel } from "../../domain/Channel.ts"
import type { Event } from "../../domain/Event.ts"
import { HISTORY_PER_CHANNEL, IDEMPOTENCY_TTL_S } from "../../domain/Limits.ts"
import { EventBus, type Published } from "../../services/EventBus.ts"
import { attempt, RedisClient } from "./Client.ts"
import { Keys } from "./Keys.ts"
import { RedisSubscriber } from "./Subscriber.ts"

/** History lives as long as idempotency records do: a day. */
const HISTORY_TTL_S = IDEMPOTENCY_TTL_S

// KEYS: seq, history, idempotency. ARGV: pub/sub name, event json (no seq), history size, ttl, id.
// SPUBLISH: the pub/sub name carries the channel's hash tag, so it is in the same slot as the keys.
// Returns {fresh (1|0), seq, id}: a repeat gets the first publish's seq and id.
const PUBLISH = `
local previous = redis.call('GET', KEYS[3])
if previous then
  local bar = string.find(previous, '|', 1, true)
  return {0, tonumber(string.sub(previous, 1, bar - 1)), string.sub(previous, bar + 1)}
end
local seq = redis.call('INCR', KEYS[1])
local message = seq .. '|' .. ARGV[2]
redis.call('LPUSH', KEYS[2], message)
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
redis.call('SET', KEYS[3], seq .. '|' .. ARGV[5], 'EX', tonumber(ARGV[4]))
redis.call('SPUBLISH', ARGV[1], message)
return {1, seq, ARGV[5]}
`

interface Scripted {
  tidingsPublish(
    seqKey: string, historyKey: string, idemKey: string,
    name: string, json: string, historySize: number, ttl: number, id: string
  ): Promise<[number, number, string]>
}

/** "<seq>|<json>" → Event, or undefined for anything malformed. */
export const decodeMessage = (channel: Channel, message: string): Event | undefined => {
  const bar = message.indexOf("|")
  const seq = Number(message.slice(0, bar))
  if (bar < 1 || !Number.isSafeInteger(seq)) return undefined
  try {
    const body = JSON.parse(message.slice(bar + 1)) as Omit<Event, "seq" | "channel">
    return { id: body.id, channel, kind: body.kind, ref: body.ref, at: body.at, seq }
  } catch {
    return undefined
  }
}

export const layer = Layer.effect(
  EventBus,
  Effect.gen(function*() {
    const redis = (yield* RedisClient).commands
    const subscriber = yield* RedisSubscriber
    redis.defineCommand("tidingsPublish", { numberOfKeys: 3, lua: PUBLISH })
    const scripted = redis as unknown as Scripted
    const call = attempt("event-bus")

    return EventBus.of({
      publish: (draft, idempotencyKey) =>
        call(() =>
          scripted.tidingsPublish(
            Keys.seq(draft.channel),
            Keys.history(draft.channel),
            Keys.idempotency(draft.channel, idempotencyKey),
            Keys.events(draft.channel),
            JSON.stringify({ id: draft.id, kind: draft.kind, ref: draft.ref, at: draft.at }),
            HISTORY_PER_CHANNEL,
            HISTORY_TTL_S,
            draft.id
          )
        ).pipe(
          Effect.map(([fresh, seq, id]): Published => ({
            id: id as Published["id"],
            channel: draft.channel,
            seq,
            fresh: fresh === 1
          }))
        ),
      subscribe: (channel, listener) =>
        Effect.gen(function*() {
          // The last seq handed to `listener` (or read, at the start); live messages wait while
          // a gap is being filled, and while that first read is out.
          let last = 0
          let held: Array<Event> | undefined = []
          const deliver = (event: Event) => {
            if (event.seq <= last) return
            last = event.seq
            listener(event)
          }
          const backfill = () => {
            if (held !== undefined) return
            held = []
            redis.lrange(Keys.history(channel), 0, -1).then(
              (messages) => {
                for (const m of messages.reverse()) {
                  const event = decodeMessage(channel, m)
                  if (event !== undefined) deliver(event)
                }
              },
              () => undefined
            ).finally(() => {
              const pending = held ?? []
              held = undefined
              for (const event of pending) deliver(event)
            })
          }
          yield* subscriber.listen(Keys.events(channel), (message) => {
            const event = decodeMessage(channel, message)
            if (event === undefined) return
            if (held !== undefined) held.push(event)
            else deliver(event)
          })
          // Read once the subscription is live: any later event is sure to reach the listener,
          // so this seq is one a subscriber can be told without a read of its own.
          last = Number((yield* call(() => redis.get(Keys.seq(channel)))) ?? 0)
          const pending = held
          held = undefined
          for (const event of pending) deliver(event)
          yield* subscriber.onReconnect(backfill)
          return () => last
        }),
      lastSeq: (channel) => call(() => redis.get(Keys.seq(channel))).pipe(Effect.map((seq) => Number(seq ?? 0))),
      since: (channel, seq) =>
        call(() => redis.lrange(Keys.history(channel), 0, -1)).pipe(
          Effect.map((messages) => {
            // Newest first in the list; oldest first out.
            const events = messages.map((m) => decodeMessage(channel, m)).filter((e): e is Event => e !== undefined).reverse()
            const first = events[0]?.seq
            if (first === undefined) return seq === 0 ? [] : undefined
            if (seq + 1 < first) return undefined
            return events.filter((event) => event.seq > seq)
          })
        )
    })
  })
)
