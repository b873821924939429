// A Lua script as a typed value: its keys, arguments and answer are in its type, and it runs
// with EVALSHA (the body goes to Redis only when Redis does not have it cached: after a restart
// or a failover, EVAL once). Nothing is registered on the client: ioredis's defineCommand, run
// while an auto-pipeline was open, left that pipeline without the command, and its answers out
// of step with its callers; the next answer threw where nothing could catch it and ended the
// process (ioredis #1931; the fault suite met it at a node's start after kill -9).
import { createHash } from "node:crypto"
import type { Redis } from "ioredis"

export interface Script<K extends ReadonlyArray<string>, A extends ReadonlyArray<string | number>, R> {
  readonly lua: string
  readonly sha: string
  readonly run: (redis: Redis, keys: K, args: A) => Promise<R>
}

const missing = (error: unknown) => error instanceof Error && error.message.startsWith("NOSCRIPT")

export const make = <K extends ReadonlyArray<string>, A extends ReadonlyArray<string | number>, R>(
  lua: string
): Script<K, A, R> => {
  const sha = createHash("sha1").update(lua).digest("hex")
  return {
    lua,
    sha,
    run: (redis, keys, args) =>
      (redis.evalsha(sha, keys.length, ...keys, ...args) as Promise<R>).catch((error: unknown) =>
        missing(error) ? (redis.eval(lua, keys.length, ...keys, ...args) as Promise<R>) : Promise.reject(error)
      )
  }
}
