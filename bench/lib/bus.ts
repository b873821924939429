// "Straight through the bus": the Redis side of a publish exactly as Tidings does it, so the
// bench publisher and the floor server put events on the same Redis channels, with the same
// seq, history and idempotency records, as a Tidings node would. The Lua script is read from
// Tidings' own source at start, so the two can never drift apart silently.
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Redis } from "ioredis"
import { HISTORY_PER_CHANNEL, IDEMPOTENCY_TTL_S } from "../../src/domain/Limits.ts"

const SOURCE = fileURLToPath(new URL("../../src/interpreters/redis/EventBus.ts", import.meta.url))

export const PUBLISH_SCRIPT: string = (() => {
  const match = /const PUBLISH = `([\s\S]*?)`/.exec(readFileSync(SOURCE, "utf8"))
  if (match === null) throw new Error(`bench: no PUBLISH script found in ${SOURCE}; update bench/lib/bus.ts`)
  return match[1]!
})()

// The key names of src/interpreters/redis/Keys.ts (run.ts checks they still agree).
export const keys = {
  seq: (channel: string) => `tdg:{${channel}}:seq`,
  history: (channel: string) => `tdg:{${channel}}:history`,
  idempotency: (channel: string, key: string) => `tdg:{${channel}}:idem:${key}`,
  events: (channel: string) => `tdg:{${channel}}:events`
}

interface Scripted {
  benchPublish(
    seqKey: string, historyKey: string, idemKey: string,
    name: string, json: string, historySize: number, ttl: number, id: string
  ): Promise<[number, number, string]>
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
  redis.defineCommand("benchPublish", { numberOfKeys: 3, lua: PUBLISH_SCRIPT })
  const scripted = redis as unknown as Scripted
  return {
    redis,
    publish: async (channel, id, kind, ref, idemScope) => {
      const json = JSON.stringify({ id, kind, ref, at: new Date().toISOString() })
      const [, seq] = await scripted.benchPublish(
        keys.seq(channel), keys.history(channel), keys.idempotency(channel, `${idemScope}/${id}`),
        keys.events(channel), json, HISTORY_PER_CHANNEL, IDEMPOTENCY_TTL_S, id
      )
      return seq
    },
    close: () => redis.quit().then(() => undefined, () => redis.disconnect())
  }
}
