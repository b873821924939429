// "Straight through the bus": the Redis side of a publish exactly as Tidings does it, so the
// bench publisher and the floor server put events on the same Redis channels, with the same
// seq, epoch, history and idempotency records, as a Tidings node would (for Tidings, named and
// sealed with the bench's data key). The Lua script, the names and the seal are Tidings' own
// (imported), so the two can never drift apart silently.
import { Redis } from "ioredis"
import { createHash } from "node:crypto"
import { parse } from "../../src/domain/Channel.ts"
import { HISTORY_PER_CHANNEL } from "../../src/domain/Limits.ts"
import { newEpoch } from "../../src/interpreters/Follower.ts"
import { derive, pseudonym, seal } from "../../src/interpreters/redis/DataKey.ts"
import { PUBLISH, RETENTION_S } from "../../src/interpreters/redis/EventBus.ts"
import { named } from "../../src/interpreters/redis/Keys.ts"

/** The data key the bench's Tidings nodes run with: the bench publishes as they would. */
export const BENCH_DATA_KEY = createHash("sha256").update("tidings bench data key").digest()
const benchKey = derive(BENCH_DATA_KEY)
const sealedNames = named((text) => pseudonym(benchKey, text))

// The floor's names: plain channel names in Tidings' layout (the floor seals nothing).
export const keys = {
  seq: (channel: string) => `tdg:{${channel}}:seq`,
  epoch: (channel: string) => `tdg:{${channel}}:epoch`,
  history: (channel: string) => `tdg:{${channel}}:history`,
  idempotency: (channel: string, key: string) => `tdg:{${channel}}:idem:${key}`,
  events: (channel: string) => `tdg:{${channel}}:events`
}

/** A Tidings node's keys for a channel, and how its values are sealed (Keys.ts, DataKey.ts). */
const tidingsPublish = (channel: string, key: string, id: string, json: string) => {
  const at = sealedNames.channel(parse(channel)!)
  return {
    keys: [at.seq, at.history, sealedNames.idempotency(at, key), at.epoch] as [string, string, string, string],
    events: at.events,
    json: seal(benchKey, at.tag, json),
    id: seal(benchKey, at.tag, id)
  }
}

export interface Bus {
  readonly redis: Redis
  /**
   * One event on `channel`; resolves with its seq. `idemScope` plays the role of the service id;
   * `sealed` names and seals it as a Tidings node does (for the floor: plain names and values).
   */
  readonly publish: (channel: string, id: string, kind: string, ref: string, idemScope: string, sealed: boolean) => Promise<number>
  readonly close: () => Promise<void>
}

export const connectBus = async (url: string): Promise<Bus> => {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  redis.on("error", () => undefined)
  await redis.connect()
  return {
    redis,
    publish: async (channel, id, kind, ref, idemScope, sealed) => {
      const json = JSON.stringify({ id, kind, ref, at: new Date().toISOString() })
      const key = `${idemScope}/${id}`
      const target = sealed
        ? tidingsPublish(channel, key, id, json)
        : { keys: [keys.seq(channel), keys.history(channel), keys.idempotency(channel, key), keys.epoch(channel)] as [string, string, string, string], events: keys.events(channel), json, id }
      const [, seq] = await PUBLISH.run(
        redis,
        target.keys,
        [target.events, target.json, HISTORY_PER_CHANNEL, RETENTION_S, target.id, newEpoch(), Date.now()]
      )
      return seq
    },
    close: () => redis.quit().then(() => undefined, () => redis.disconnect())
  }
}
