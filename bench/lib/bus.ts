// "Straight through the bus": the Redis side of a publish exactly as Tidings does it, so the
// bench publisher and the floor server put events on the same Redis channels, with the same
// seq, epoch, history and idempotency records, as a Tidings node would. The Lua script is
// Tidings' own (imported), so the two can never drift apart silently.
import { Redis } from "ioredis"
import { HISTORY_PER_CHANNEL, IDEMPOTENCY_TTL_S } from "../../src/domain/Limits.ts"
import { newEpoch } from "../../src/interpreters/Follower.ts"
import { PUBLISH } from "../../src/interpreters/redis/EventBus.ts"

// The key names of src/interpreters/redis/Keys.ts (run.ts checks they still agree).
export const keys = {
  seq: (channel: string) => `tdg:{${channel}}:seq`,
  epoch: (channel: string) => `tdg:{${channel}}:epoch`,
  history: (channel: string) => `tdg:{${channel}}:history`,
  idempotency: (channel: string, key: string) => `tdg:{${channel}}:idem:${key}`,
  events: (channel: string) => `tdg:{${channel}}:events`
}

export interface Bus {
  readonly redis: Redis
  /** One event on `channel`; resolves with its seq. `idemScope` plays the role of the service id. */
  readonly publish: (channel: string, id: string, kind: string, ref: string, idemScope: string) => Promise<number>
  readonly close: () => Promise<void>
}

export const connectBus = async (url: string): Promise<Bus> => {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  redis.on("error", () => undefined)
  await redis.connect()
  return {
    redis,
    publish: async (channel, id, kind, ref, idemScope) => {
      const json = JSON.stringify({ id, kind, ref, at: new Date().toISOString() })
      const [, seq] = await PUBLISH.run(
        redis,
        [keys.seq(channel), keys.history(channel), keys.idempotency(channel, `${idemScope}/${id}`), keys.epoch(channel)],
        [keys.events(channel), json, HISTORY_PER_CHANNEL, IDEMPOTENCY_TTL_S, id, newEpoch()]
      )
      return seq
    },
    close: () => redis.quit().then(() => undefined, () => redis.disconnect())
  }
}
