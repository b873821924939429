// Every TIDINGS_* setting (contract §7), parsed once at start by a pure function so that a
// bad or missing setting is one clear line and exit code 78, before anything listens.
// Secrets are never read here: only the paths of the files that hold them.
import { Redacted, Result } from "effect"
import { DEFAULT_EVENT_KINDS } from "./domain/Event.ts"
import * as Limits from "./domain/Limits.ts"
import type { SettingsShape } from "./services/Settings.ts"
import { defaults } from "./services/Settings.ts"
import type { CertificateSource } from "./server/Tls.ts"

export type Mode = "dev" | "production"

export type AuthSource =
  | { readonly _tag: "DevIssuer" }
  | {
    readonly _tag: "Issuer"
    readonly issuer: string
    readonly audience: string
    readonly jwks: { readonly _tag: "Url"; readonly url: URL } | { readonly _tag: "File"; readonly file: string }
  }

export type AuditSink =
  | { readonly _tag: "File"; readonly directory: string; readonly maxFileBytes: number }
  | { readonly _tag: "Redis" }

export interface AppConfig {
  readonly mode: Mode
  readonly listen: { readonly host: string; readonly port: number }
  readonly tls: CertificateSource
  /** CA file of the services' client certificates; services must then show one. */
  readonly tlsClientCaFile: string | undefined
  readonly allowedOrigins: ReadonlySet<string>
  readonly redisUrl: Redacted.Redacted<string> | undefined
  /** Seed nodes of a Redis Cluster (TIDINGS_REDIS_CLUSTER); takes precedence over the URL. */
  readonly redisCluster: ReadonlyArray<{ readonly host: string; readonly port: number }> | undefined
  /** The Redis password's file (TIDINGS_REDIS_PASSWORD_FILE): secrets come from files, never the environment. */
  readonly redisPasswordFile: string | undefined
  /** The Redis ACL user (TIDINGS_REDIS_USER): a cluster's seeds have no URL to name it in. */
  readonly redisUser: string | undefined
  /** PEM CAs trusted for Redis's certificate (TIDINGS_REDIS_CA_FILE); unset: the system CAs. */
  readonly redisCaFile: string | undefined
  readonly auth: AuthSource
  readonly ticketKeyFile: string | undefined
  /** Keys that signed tickets before a rotation, still accepted for verification. */
  readonly previousTicketKeyFiles: ReadonlyArray<string>
  /** The key the next rotation phase will sign with: accepted now, never used to sign. */
  readonly nextTicketKeyFile: string | undefined
  readonly auditKeyFile: string | undefined
  /**
   * The data key (TIDINGS_DATA_KEY_FILE): names and seals everything Tidings puts in Redis.
   * Required with Redis, the same file on every node; unused without Redis.
   */
  readonly dataKeyFile: string | undefined
  /** Data keys accepted for opening values, never used to seal (a rotation's overlap). */
  readonly previousDataKeyFiles: ReadonlyArray<string>
  /**
   * TLS session resumption key (TIDINGS_TLS_RESUMPTION_KEY_FILE): the same file on every node
   * lets a client resume its TLS session on any node and across restarts; unset, each start
   * makes its own (resumption only on the node that made the session, until it restarts).
   */
  readonly tlsResumptionKeyFile: string | undefined
  /** Dev only: the dev issuer's key, so several dev nodes accept each other's tokens. */
  readonly devIssuerKeyFile: string | undefined
  readonly auditSink: AuditSink
  readonly heartbeatS: number
  readonly connection: {
    readonly handshakeTimeoutS: number
    readonly headersTimeoutS: number
    readonly headerBytes: number
    readonly bodyBytes: number
  }
  readonly metricsListen: { readonly host: string; readonly port: number }
  readonly logLevel: "Debug" | "Info" | "Warn" | "Error"
  readonly settings: SettingsShape
}

/** A setting that stops the start: its name and what is wrong, never its value. */
export interface ConfigProblem {
  readonly setting: string
  readonly problem: string
}

export const EXIT_CONFIG = 78

type Env = Readonly<Record<string, string | undefined>>

class Problem {
  readonly setting: string
  readonly problem: string
  constructor(setting: string, problem: string) {
    this.setting = setting
    this.problem = problem
  }
}

const fail = (setting: string, problem: string): never => {
  throw new Problem(setting, problem)
}

const read = (env: Env, name: string): string | undefined => {
  const value = env[name]?.trim()
  return value === undefined || value === "" ? undefined : value
}

const required = (env: Env, name: string, mode: Mode): string | undefined => {
  const value = read(env, name)
  if (value === undefined && mode === "production") fail(name, "is required in production")
  return value
}

const int = (env: Env, name: string, fallback: number, min: number, max: number): number => {
  const text = read(env, name)
  if (text === undefined) return fallback
  const value = Number(text)
  if (!Number.isInteger(value) || value < min || value > max) fail(name, `must be a whole number from ${min} to ${max}`)
  return value
}

const hostPort = (env: Env, name: string, fallback: string) => {
  const text = read(env, name) ?? fallback
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text)
  const port = Number(match?.[2])
  if (match === null || port < 1 || port > 65535) return fail(name, "must be host:port")
  return { host: match[1]!.replace(/^\[|\]$/g, ""), port }
}

const origins = (env: Env, name: string, fallback: ReadonlyArray<string>): ReadonlySet<string> => {
  const text = read(env, name)
  const list = text === undefined ? fallback : text.split(",").map((o) => o.trim()).filter((o) => o.length > 0)
  for (const origin of list) {
    // An origin is scheme://host[:port] exactly: no path, no wildcard, never "null".
    if (!/^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/.test(origin)) fail(name, "must be a comma list of origins like https://app.example.org")
  }
  return new Set(list)
}

const DEV_ORIGINS = ["https://localhost:8443", "http://localhost:3000", "http://localhost:5173"]
const LOG_LEVELS = { debug: "Debug", info: "Info", warn: "Warn", error: "Error" } as const

export const parse = (env: Env): Result.Result<AppConfig, ConfigProblem> => {
  try {
    return Result.succeed(parseOrThrow(env))
  } catch (error) {
    if (error instanceof Problem) return Result.fail({ setting: error.setting, problem: error.problem })
    throw error
  }
}

const parseOrThrow = (env: Env): AppConfig => {
  const modeText = read(env, "TIDINGS_MODE") ?? "dev"
  if (modeText !== "dev" && modeText !== "production") fail("TIDINGS_MODE", "must be dev or production")
  const mode = modeText as Mode

  // Production listens on every interface; dev only on loopback, because its token issuer
  // hands out admin tokens to anyone who asks.
  const listen = hostPort(env, "TIDINGS_LISTEN", mode === "production" ? "0.0.0.0:8443" : "127.0.0.1:8443")

  const certFile = required(env, "TIDINGS_TLS_CERT_FILE", mode)
  const keyFile = required(env, "TIDINGS_TLS_KEY_FILE", mode)
  if ((certFile === undefined) !== (keyFile === undefined)) {
    fail(certFile === undefined ? "TIDINGS_TLS_CERT_FILE" : "TIDINGS_TLS_KEY_FILE", "must be set together with its pair")
  }
  const tls: CertificateSource = certFile !== undefined && keyFile !== undefined
    ? { _tag: "Files", certFile, keyFile }
    : { _tag: "SelfSigned" }

  const allowedOrigins = origins(env, "TIDINGS_ALLOWED_ORIGINS", mode === "production" ? [] : DEV_ORIGINS)
  if (mode === "production" && allowedOrigins.size === 0) fail("TIDINGS_ALLOWED_ORIGINS", "is required in production")

  const clusterText = read(env, "TIDINGS_REDIS_CLUSTER")
  const redisCluster = clusterText === undefined ? undefined : clusterText.split(",").map((node) => {
    const match = /^([A-Za-z0-9.-]+):(\d{1,5})$/.exec(node.trim())
    const port = Number(match?.[2])
    if (match === null || port < 1 || port > 65535) return fail("TIDINGS_REDIS_CLUSTER", "must be a comma list of host:port")
    return { host: match[1]!, port }
  })
  const redisText = redisCluster === undefined ? required(env, "TIDINGS_REDIS_URL", mode) : read(env, "TIDINGS_REDIS_URL")
  if (redisText !== undefined && !/^rediss?:\/\//.test(redisText)) fail("TIDINGS_REDIS_URL", "must be a redis:// or rediss:// URL")
  const redisPasswordFile = read(env, "TIDINGS_REDIS_PASSWORD_FILE")
  // `redis://user:password@host`: the password is whatever follows the first colon of the userinfo.
  const urlHasPassword = redisText !== undefined && /^rediss?:\/\/[^/@]*:[^/@]*@/.test(redisText)
  if (urlHasPassword && (mode === "production" || redisPasswordFile !== undefined)) {
    fail("TIDINGS_REDIS_URL", "must not hold a password: put it in the file TIDINGS_REDIS_PASSWORD_FILE names")
  }

  const redisUser = read(env, "TIDINGS_REDIS_USER")
  if (redisUser !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(redisUser)) fail("TIDINGS_REDIS_USER", "must be a Redis user name ([A-Za-z0-9._-], at most 64)")
  // Two names for one connection would leave a reader guessing which one Redis sees.
  if (redisUser !== undefined && redisText !== undefined && /^rediss?:\/\/[^/@:]+(:[^/@]*)?@/.test(redisText)) {
    fail("TIDINGS_REDIS_USER", "must not be set when TIDINGS_REDIS_URL names a user")
  }

  const redisCaFile = read(env, "TIDINGS_REDIS_CA_FILE")
  // A CA for a plain redis:// URL would be silently unused: the operator meant TLS and would not get it.
  if (redisCaFile !== undefined && redisCluster === undefined && !/^rediss:\/\//.test(redisText ?? "")) {
    fail("TIDINGS_REDIS_CA_FILE", "needs a rediss:// TIDINGS_REDIS_URL or TIDINGS_REDIS_CLUSTER")
  }

  const devIssuer = read(env, "TIDINGS_DEV_ISSUER")
  if (devIssuer !== undefined && !["true", "false"].includes(devIssuer)) fail("TIDINGS_DEV_ISSUER", "must be true or false")
  if (mode === "production" && devIssuer === "true") fail("TIDINGS_DEV_ISSUER", "must not be enabled in production")

  const issuer = required(env, "TIDINGS_AUTH_ISSUER", mode)
  if (issuer === undefined && devIssuer === "false") fail("TIDINGS_AUTH_ISSUER", "is required when TIDINGS_DEV_ISSUER=false")
  let auth: AuthSource = { _tag: "DevIssuer" }
  if (issuer !== undefined && devIssuer !== "true") {
    const audience = read(env, "TIDINGS_AUTH_AUDIENCE") ?? fail("TIDINGS_AUTH_AUDIENCE", "is required with TIDINGS_AUTH_ISSUER")
    const url = read(env, "TIDINGS_AUTH_JWKS_URL")
    const file = read(env, "TIDINGS_AUTH_JWKS_FILE")
    if (url === undefined && file === undefined) fail("TIDINGS_AUTH_JWKS_URL", "or TIDINGS_AUTH_JWKS_FILE is required with TIDINGS_AUTH_ISSUER")
    if (url !== undefined && (!/^https:\/\//.test(url) || !URL.canParse(url))) {
      fail("TIDINGS_AUTH_JWKS_URL", "must be an https:// URL")
    }
    auth = {
      _tag: "Issuer",
      issuer,
      audience,
      jwks: url !== undefined ? { _tag: "Url", url: new URL(url) } : { _tag: "File", file: file! }
    }
  }

  const ticketKeyFile = required(env, "TIDINGS_TICKET_KEY_FILE", mode)
  const previousText = read(env, "TIDINGS_TICKET_PREVIOUS_KEY_FILES")
  const previousTicketKeyFiles = previousText === undefined ? [] : previousText.split(",").map((f) => f.trim()).filter((f) => f.length > 0)
  if (previousTicketKeyFiles.length > 0 && ticketKeyFile === undefined) {
    fail("TIDINGS_TICKET_KEY_FILE", "is required with TIDINGS_TICKET_PREVIOUS_KEY_FILES")
  }
  const nextTicketKeyFile = read(env, "TIDINGS_TICKET_NEXT_KEY_FILE")
  if (nextTicketKeyFile !== undefined && ticketKeyFile === undefined) {
    fail("TIDINGS_TICKET_KEY_FILE", "is required with TIDINGS_TICKET_NEXT_KEY_FILE")
  }
  const devIssuerKeyFile = read(env, "TIDINGS_DEV_ISSUER_KEY_FILE")
  if (devIssuerKeyFile !== undefined && mode === "production") fail("TIDINGS_DEV_ISSUER_KEY_FILE", "must not be set in production")
  const auditKeyFile = required(env, "TIDINGS_AUDIT_KEY_FILE", mode)
  const dataKeyFile = read(env, "TIDINGS_DATA_KEY_FILE")
  const previousDataText = read(env, "TIDINGS_DATA_PREVIOUS_KEY_FILES")
  const previousDataKeyFiles = previousDataText === undefined ? [] : previousDataText.split(",").map((f) => f.trim()).filter((f) => f.length > 0)
  // A node with a key of its own would name every key differently from its peers (and from its
  // own last start): one shared file, whatever the mode. Without Redis nothing leaves the process.
  if (dataKeyFile === undefined && (redisText !== undefined || redisCluster !== undefined)) {
    fail("TIDINGS_DATA_KEY_FILE", "is required with Redis (the same file on every node)")
  }
  if (dataKeyFile === undefined && previousDataKeyFiles.length > 0) {
    fail("TIDINGS_DATA_KEY_FILE", "is required with TIDINGS_DATA_PREVIOUS_KEY_FILES")
  }

  const sinkText = read(env, "TIDINGS_AUDIT_SINK") ?? "file:.data/audit"
  let auditSink: AuditSink
  if (sinkText === "redis") {
    if (redisText === undefined && redisCluster === undefined) fail("TIDINGS_AUDIT_SINK", "redis needs TIDINGS_REDIS_URL or TIDINGS_REDIS_CLUSTER")
    auditSink = { _tag: "Redis" }
  } else if (sinkText.startsWith("file:") && sinkText.length > 5) {
    auditSink = {
      _tag: "File",
      directory: sinkText.slice(5),
      maxFileBytes: int(env, "TIDINGS_AUDIT_FILE_MAX_BYTES", 64 * 1024 * 1024, 4096, 2 ** 40)
    }
  } else auditSink = fail("TIDINGS_AUDIT_SINK", "must be file:<directory> or redis")

  const nodeId = read(env, "TIDINGS_NODE_ID") ?? defaults.nodeId
  // It names audit files and the audit stream: a plain word, never a path.
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(nodeId)) fail("TIDINGS_NODE_ID", "must be 1 to 64 letters, digits, - or _")

  const kindsText = read(env, "TIDINGS_EVENT_KINDS")
  const eventKinds = kindsText === undefined ? DEFAULT_EVENT_KINDS : kindsText.split(",").map((k) => k.trim()).filter((k) => k.length > 0)
  for (const kind of eventKinds) {
    if (!/^[a-z][a-z0-9_]{0,31}(\.[a-z][a-z0-9_]{0,31}){1,3}$/.test(kind)) fail("TIDINGS_EVENT_KINDS", "must be a comma list of kinds like appointment.updated")
  }

  const level = (read(env, "TIDINGS_LOG_LEVEL") ?? "info").toLowerCase()
  if (!(level in LOG_LEVELS)) fail("TIDINGS_LOG_LEVEL", "must be debug, info, warn or error")

  return {
    mode,
    listen,
    tls,
    tlsClientCaFile: read(env, "TIDINGS_TLS_CLIENT_CA"),
    allowedOrigins,
    redisUrl: redisText === undefined ? undefined : Redacted.make(redisText),
    redisCluster,
    redisPasswordFile,
    redisUser,
    redisCaFile,
    auth,
    ticketKeyFile,
    previousTicketKeyFiles,
    nextTicketKeyFile,
    auditKeyFile,
    dataKeyFile,
    previousDataKeyFiles,
    tlsResumptionKeyFile: read(env, "TIDINGS_TLS_RESUMPTION_KEY_FILE"),
    devIssuerKeyFile,
    auditSink,
    heartbeatS: int(env, "TIDINGS_HEARTBEAT_S", 25, 1, 3600),
    connection: {
      handshakeTimeoutS: int(env, "TIDINGS_HANDSHAKE_TIMEOUT_S", Limits.HANDSHAKE_TIMEOUT_S, 1, 120),
      headersTimeoutS: int(env, "TIDINGS_HEADERS_TIMEOUT_S", Limits.HEADERS_TIMEOUT_S, 1, 120),
      headerBytes: int(env, "TIDINGS_MAX_HEADER_BYTES", Limits.HEADER_BYTES, 2048, 65_536),
      bodyBytes: int(env, "TIDINGS_MAX_BODY_BYTES", Limits.BODY_BYTES, 1024, 1024 * 1024)
    },
    metricsListen: hostPort(env, "TIDINGS_METRICS_LISTEN", "127.0.0.1:9464"),
    logLevel: LOG_LEVELS[level as keyof typeof LOG_LEVELS],
    settings: {
      nodeId,
      eventKinds: new Set(eventKinds),
      sessionMaxS: int(env, "TIDINGS_SESSION_MAX_S", defaults.sessionMaxS, 60, 7 * 86_400),
      idleTimeoutS: int(env, "TIDINGS_IDLE_TIMEOUT_S", defaults.idleTimeoutS, 30, 86_400),
      maxSessionsPerSubject: int(env, "TIDINGS_MAX_SESSIONS_PER_SUBJECT", defaults.maxSessionsPerSubject, 1, 1000),
      maxSubscriptionsPerConnection: int(
        env, "TIDINGS_MAX_SUBSCRIPTIONS_PER_CONNECTION", defaults.maxSubscriptionsPerConnection, 1, 10_000
      ),
      outboxFrames: int(env, "TIDINGS_OUTBOX_FRAMES", Limits.OUTBOX_FRAMES, Limits.ACK_EVERY_FRAMES * 2, 1_000_000),
      outboxBytes: defaults.outboxBytes,
      rates: {
        messages: { ...defaults.rates.messages, limit: int(env, "TIDINGS_RATE_MESSAGES_PER_S", defaults.rates.messages.limit, 1, 100_000) },
        subscribes: { ...defaults.rates.subscribes, limit: int(env, "TIDINGS_RATE_SUBSCRIBES_PER_MIN", defaults.rates.subscribes.limit, 1, 1_000_000) },
        tickets: { ...defaults.rates.tickets, limit: int(env, "TIDINGS_RATE_TICKETS_PER_MIN", defaults.rates.tickets.limit, 1, 1_000_000) },
        ticketsPerIp: { ...defaults.rates.ticketsPerIp, limit: int(env, "TIDINGS_RATE_TICKETS_PER_IP_PER_MIN", defaults.rates.ticketsPerIp.limit, 1, 10_000_000) },
        connectsPerIp: { ...defaults.rates.connectsPerIp, limit: int(env, "TIDINGS_RATE_CONNECTS_PER_IP_PER_MIN", defaults.rates.connectsPerIp.limit, 1, 10_000_000) },
        connectsPerSubject: { ...defaults.rates.connectsPerSubject, limit: int(env, "TIDINGS_RATE_CONNECTS_PER_MIN", defaults.rates.connectsPerSubject.limit, 1, 1_000_000) },
        publishes: { ...defaults.rates.publishes, limit: int(env, "TIDINGS_RATE_PUBLISHES_PER_S", defaults.rates.publishes.limit, 1, 10_000_000) }
      },
      storage: {
        bytes: int(env, "TIDINGS_STORAGE_BYTES_PER_SERVICE", defaults.storage.bytes, 1024 * 1024, 2 ** 50),
        channels: int(env, "TIDINGS_STORAGE_CHANNELS_PER_SERVICE", defaults.storage.channels, 1, 1_000_000_000)
      }
    }
  }
}
