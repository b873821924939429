// The ioredis command connection of one node, to a single Redis or to a Redis Cluster, as a
// scoped resource. Commands fail fast while Redis is away (no offline queue), so callers fail
// closed (503 / 4503) instead of piling up; the connection reconnects on its own.
import { Context, Effect, Layer, Redacted, Schema } from "effect"
import { Cluster, Redis } from "ioredis"
import { readFileSync } from "node:fs"
import { isIP } from "node:net"
import { connect as tlsConnect } from "node:tls"
import { Unavailable } from "../../domain/Errors.ts"

/**
 * Where Redis is; `username` from TIDINGS_REDIS_USER (a URL may name it instead), `password`
 * read from TIDINGS_REDIS_PASSWORD_FILE, `ca` (PEM) from TIDINGS_REDIS_CA_FILE, when set. A
 * `rediss://` URL is TLS with the certificate verified (against `ca`, else the system CAs); a
 * cluster is reached over TLS when it has a `ca`.
 */
export type RedisTarget =
  | {
    readonly _tag: "Single"
    readonly url: Redacted.Redacted<string>
    readonly username?: string
    readonly password?: Redacted.Redacted<string>
    readonly ca?: string
  }
  | {
    readonly _tag: "Cluster"
    readonly nodes: ReadonlyArray<{ readonly host: string; readonly port: number }>
    readonly username?: string
    readonly password?: Redacted.Redacted<string>
    readonly ca?: string
  }

export class RedisClient extends Context.Service<RedisClient, {
  /**
   * Commands. A Cluster client answers the same commands as a single one (ioredis mirrors the
   * API), so the interpreters are written once against `Redis`; they use single-slot
   * commands and scripts only, which is what a cluster can run.
   */
  readonly commands: Redis
  readonly cluster: boolean
}>()("tidings/RedisClient") {}

/** A command for one service: any failure (down, timeout, refused) is that service Unavailable. */
export const attempt = (service: Unavailable["service"]) => <A>(run: () => Promise<A>) =>
  Effect.tryPromise({ try: run, catch: () => new Unavailable({ service }) })

/** Redis did not answer when the node started; carries nothing of the URL (it may hold a password). */
export class RedisUnreachable extends Schema.TaggedError<RedisUnreachable>()("RedisUnreachable", {
  /**
   * Why: `silent` (nothing answered: an outage), `refused` (Redis refused the credentials) or
   * `untrusted` (its TLS certificate did not verify); the last two are configuration problems.
   */
  reason: Schema.Literals(["silent", "refused", "untrusted"])
}) {}

const AUTH_REFUSED = /WRONGPASS|NOAUTH|NOPERM|invalid (username|password)/i

/** Node's codes for a certificate that does not verify (chain, name or dates): retrying will not help. */
const UNTRUSTED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
  "INVALID_CA"
])

const PER_CONNECTION = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  commandTimeout: 2_000,
  connectTimeout: 2_000,
  autoResubscribe: true,
  // No CLIENT SETINFO on connect: the ACL user (interpreters/redis/Acl.ts) is not granted CLIENT.
  disableClientInfo: true,
  // Keep trying, never more than a second apart: readiness comes back on its own.
  retryStrategy: (times: number) => Math.min(times * 100, 1_000)
}

export interface ConnectOptions {
  /**
   * Commands issued in the same tick go out as one write, which is what keeps a node's many
   * concurrent sessions from paying a socket write (and its CPU) per command.
   */
  readonly pipelining?: boolean
  /**
   * Whether ioredis re-subscribes by itself after a reconnect (on a single Redis). The
   * control connection does it itself: ioredis leaves a refused re-SUBSCRIBE unhandled.
   */
  readonly autoResubscribe?: boolean
}

const passwordOf = (target: RedisTarget) => ({
  ...(target.username === undefined ? {} : { username: target.username }),
  ...(target.password === undefined ? {} : { password: Redacted.value(target.password) })
})

/**
 * TLS options for a `rediss://` URL: verification is Node's default and never turned off; the
 * CA, when given, replaces the system CAs. The name checked is the URL's host (no SNI for an IP).
 */
const tlsOf = (target: Extract<RedisTarget, { _tag: "Single" }>) => {
  const url = new URL(Redacted.value(target.url))
  if (url.protocol !== "rediss:") return {}
  const host = url.hostname.replace(/^\[|\]$/g, "")
  return { tls: { ...(target.ca === undefined ? {} : { ca: target.ca }), ...(isIP(host) === 0 ? { servername: host } : {}) } }
}

/**
 * The URL and login of a single Redis. ioredis takes the URL's user and password first and
 * never lets options replace them, so `rediss://tidings@host` would log in with the URL's empty
 * password instead of the file's: with a password file, the user moves from the URL to the options.
 */
const loginOf = (target: Extract<RedisTarget, { _tag: "Single" }>) => {
  const url = new URL(Redacted.value(target.url))
  if (target.password === undefined) return { url: url.href, login: passwordOf(target) }
  const username = target.username ?? (url.username === "" ? undefined : decodeURIComponent(url.username))
  url.username = ""
  url.password = ""
  return { url: url.href, login: passwordOf(username === undefined ? target : { ...target, username }) }
}

/**
 * The URL and options that reach a single Redis as the gateway does (login, TLS): for the
 * gateway's own connections and the operator's CLI alike.
 */
export const singleOptions = (target: Extract<RedisTarget, { _tag: "Single" }>) => {
  const { url, login } = loginOf(target)
  return { url, options: { ...PER_CONNECTION, ...login, ...tlsOf(target) } }
}

/** A secret file's text, without the trailing newline an editor leaves. */
export const readSecret = (file: string): string => readFileSync(file, "utf8").replace(/\r?\n$/, "")

const create = (target: RedisTarget, { autoResubscribe = true, pipelining = false }: ConnectOptions): Redis => {
  if (target._tag === "Single") {
    const { url, options } = singleOptions(target)
    return new Redis(url, { ...options, autoResubscribe, lazyConnect: true, enableAutoPipelining: pipelining })
  }
  return new Cluster([...target.nodes], {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableAutoPipelining: pipelining,
    shardedSubscribers: true,
    clusterRetryStrategy: (times: number) => Math.min(times * 100, 1_000),
    // Each node's connection verifies its certificate against the CA (names or IPs, as the
    // cluster announces them, must be in the certificates).
    redisOptions: { ...PER_CONNECTION, ...passwordOf(target), ...(target.ca === undefined ? {} : { tls: { ca: target.ca } }) }
  }) as unknown as Redis
}

/**
 * Whether a cluster's seeds present certificates the CA does not verify. ioredis fetches the
 * slots over a connection of its own whose TLS error reaches no listener (only "Connection is
 * closed" does), so a failed start asks each seed for a handshake itself.
 */
const clusterUntrusted = (target: RedisTarget): Promise<boolean> =>
  target._tag !== "Cluster" || target.ca === undefined
    ? Promise.resolve(false)
    : Promise.all(target.nodes.map((node) =>
      new Promise<boolean>((resolve) => {
        const socket = tlsConnect({ host: node.host, port: node.port, ca: target.ca, ...(isIP(node.host) === 0 ? { servername: node.host } : {}) })
        const done = (untrusted: boolean) => (socket.destroy(), resolve(untrusted))
        socket.setTimeout(PER_CONNECTION.connectTimeout, () => done(false))
        socket.once("secureConnect", () => done(false))
        socket.once("error", (error: NodeJS.ErrnoException) => done(UNTRUSTED.has(String(error.code))))
      })
    )).then((answers) => answers.some((untrusted) => untrusted))

/** Connects a new client to the target (also used for each node's subscriber connections). */
export const connect = (target: RedisTarget, options: ConnectOptions = {}) =>
  Effect.tryPromise({
    try: async () => {
      const client = create(target, options)
      // Errors surface through the commands that fail; without a listener ioredis would print.
      // The first connect's are kept: a refused AUTH shows there, not in connect's rejection.
      // A certificate that does not verify shows there too, as the TLS error's code.
      const seen: Array<string> = []
      const codes: Array<string> = []
      const onError = (error: Error) => {
        seen.push(String(error?.message))
        codes.push(String((error as NodeJS.ErrnoException | undefined)?.code))
      }
      client.on("error", onError)
      // A cluster reports its nodes' failures (a refused AUTH among them) as "node error".
      client.on("node error", onError)
      try {
        await client.connect()
        return client
      } catch (error) {
        client.disconnect()
        const refused = [...seen, String((error as Error | undefined)?.message)].some((m) => AUTH_REFUSED.test(m))
        const untrusted = [...codes, String((error as NodeJS.ErrnoException | undefined)?.code)].some((c) => UNTRUSTED.has(c)) ||
          (!refused && await clusterUntrusted(target))
        throw new RedisUnreachable({ reason: refused ? "refused" : untrusted ? "untrusted" : "silent" })
      } finally {
        client.off("error", onError)
        client.off("node error", onError)
        client.on("error", () => undefined)
      }
    },
    catch: (error) => error instanceof RedisUnreachable ? error : new RedisUnreachable({ reason: "silent" })
  })

export const release = (client: Redis) =>
  Effect.promise(() => client.quit().then(() => undefined, () => client.disconnect()))

export const layer = (target: RedisTarget) =>
  Layer.effect(
    RedisClient,
    Effect.map(Effect.acquireRelease(connect(target, { pipelining: true }), release), (commands) => ({
      commands,
      cluster: target._tag === "Cluster"
    }))
  ).pipe(Layer.provideMerge(Layer.succeed(RedisTargetRef, target)))

/** Where the node's Redis is, for the connections beside the command one. */
export class RedisTargetRef extends Context.Service<RedisTargetRef, RedisTarget>()("tidings/RedisTarget") {}
