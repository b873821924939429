// Composition: from a parsed AppConfig to the whole gateway as one Layer (interpreters,
// keys, programs' per-node state, the server and its internal metrics listener). main.ts
// launches it; tests build it too.
import { Effect, Layer, Redacted } from "effect"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { dirname } from "node:path"
import { randomBytes } from "node:crypto"
import type { AppConfig } from "./Config.ts"
import * as DevSeed from "./DevSeed.ts"
import * as FileSink from "./interpreters/audit/FileSink.ts"
import * as RedisSink from "./interpreters/audit/RedisSink.ts"
import * as AccessTokens from "./interpreters/jwt/AccessTokens.ts"
import * as DevIssuer from "./interpreters/jwt/DevIssuer.ts"
import * as SigningKeys from "./interpreters/jwt/SigningKeys.ts"
import * as TicketSigner from "./interpreters/jwt/TicketSigner.ts"
import * as MemoryAudit from "./interpreters/memory/AuditLog.ts"
import * as Memory from "./interpreters/memory/Memory.ts"
import { readSecret, type RedisTarget } from "./interpreters/redis/Client.ts"
import * as Redis from "./interpreters/redis/Redis.ts"
import * as Deadlines from "./programs/Deadlines.ts"
import * as Hub from "./programs/Hub.ts"
import { Refusals } from "./programs/Refusals.ts"
import { CareWatcher } from "./programs/Care.ts"
import * as MetricsListener from "./server/MetricsListener.ts"
import * as Server from "./server/Server.ts"
import * as Tls from "./server/Tls.ts"
import * as Settings from "./services/Settings.ts"

/** Where audit records go; tests pass "memory" to read them back. */
export type AuditChoice = "configured" | "memory"

const auditKey = (config: AppConfig): Uint8Array => {
  if (config.auditKeyFile === undefined) return randomBytes(32)
  const key = readFileSync(config.auditKeyFile)
  if (key.length < 32) throw new Error("TIDINGS_AUDIT_KEY_FILE must hold at least 32 bytes")
  return key
}

const keysLayer = (config: AppConfig) =>
  Layer.unwrap(Effect.promise(async () => {
    const ticketKey = config.ticketKeyFile === undefined
      ? SigningKeys.generateSecret()
      : await SigningKeys.ticketKeyFrom(readFileSync(config.ticketKeyFile))
    const auth = config.auth._tag === "DevIssuer"
      ? DevIssuer.layer(
        config.devIssuerKeyFile === undefined ? await SigningKeys.generate() : await SigningKeys.fromPem(readFileSync(config.devIssuerKeyFile, "utf8"))
      )
      : AccessTokens.layer({
        issuer: config.auth.issuer,
        audience: config.auth.audience,
        jwks: config.auth.jwks._tag === "Url"
          ? { _tag: "Remote", url: config.auth.jwks.url }
          : { _tag: "Local", jwks: JSON.parse(readFileSync(config.auth.jwks.file, "utf8")) }
      })
    // Accepted, never used to sign: the keys of earlier rotations and the next one's key.
    const accepted = [...config.previousTicketKeyFiles, ...(config.nextTicketKeyFile === undefined ? [] : [config.nextTicketKeyFile])]
    const previous = await Promise.all(accepted.map((file) => SigningKeys.ticketKeyFrom(readFileSync(file))))
    return Layer.mergeAll(TicketSigner.layer(ticketKey, previous), auth)
  }))

/** Where dev mode leaves its self-signed certificate, so curl and the demo can verify TLS. */
export const DEV_CERT_FILE = ".data/dev-cert.pem"

const certificate = (config: AppConfig, options: { readonly devCertFile?: string | undefined }) => {
  const material = Tls.load(config.tls)
  if (config.tls._tag === "SelfSigned" && options.devCertFile !== undefined) {
    mkdirSync(dirname(options.devCertFile), { recursive: true })
    writeFileSync(options.devCertFile, material.cert)
  }
  return material
}

export const layer = (
  config: AppConfig,
  options: {
    readonly audit?: AuditChoice
    /** The memory audit writer's bound (tests that drive a drop); the default otherwise. */
    readonly auditBufferLimit?: number
    readonly devCertFile?: string | undefined
  } = {}
) => {
  const key = auditKey(config)
  const settings = Settings.layer(config.settings)
  // Redis when a URL or cluster is set (production always has one); otherwise one process is the gateway.
  // Read once here; Startup checked the file can be read. Trailing newlines are the editor's.
  const password = config.redisPasswordFile === undefined
    ? {}
    : { password: Redacted.make(readSecret(config.redisPasswordFile)) }
  const ca = config.redisCaFile === undefined ? {} : { ca: readFileSync(config.redisCaFile, "utf8") }
  const username = config.redisUser === undefined ? {} : { username: config.redisUser }
  const target: RedisTarget | undefined = config.redisCluster !== undefined
    ? { _tag: "Cluster", nodes: config.redisCluster, ...username, ...password, ...ca }
    : config.redisUrl !== undefined
    ? { _tag: "Single", url: config.redisUrl, ...username, ...password, ...ca }
    : undefined
  // Config requires the data key with Redis; Startup checked it holds 32 bytes.
  const interpreters = target === undefined ? Memory.layer(key) : Redis.layer(target, {
    current: readFileSync(config.dataKeyFile!),
    previous: config.previousDataKeyFiles.map((file) => readFileSync(file))
  })
  const audit = options.audit === "memory"
    ? MemoryAudit.layer(key, options.auditBufferLimit === undefined ? {} : { maxBuffered: options.auditBufferLimit })
    : config.auditSink._tag === "File"
    ? FileSink.layer({ directory: config.auditSink.directory, maxFileBytes: config.auditSink.maxFileBytes, key })
    // Config refuses the redis sink without a Redis target.
    : RedisSink.layer({ target: target!, key })
  const services = Layer.mergeAll(interpreters, audit).pipe(Layer.provideMerge(settings))
  const perNode = Layer.mergeAll(Hub.layer, Deadlines.layer, CareWatcher, Refusals.layer(), config.mode === "dev" ? DevSeed.layer : Layer.empty)
  const server = Server.layer({
    host: config.listen.host,
    port: config.listen.port,
    tls: certificate(config, options),
    certificate: config.tls._tag === "Files" ? { certFile: config.tls.certFile, keyFile: config.tls.keyFile } : undefined,
    clientCa: config.tlsClientCaFile === undefined ? undefined : readFileSync(config.tlsClientCaFile, "utf8"),
    ticketKeys: config.tlsResumptionKeyFile === undefined ? undefined : Tls.resumptionKeys(readFileSync(config.tlsResumptionKeyFile)),
    dev: config.auth._tag === "DevIssuer",
    allowedOrigins: config.allowedOrigins,
    heartbeatS: config.heartbeatS,
    connection: config.connection,
    window: { frames: config.settings.outboxFrames, bytes: config.settings.outboxBytes }
  })
  // The internal metrics listener lives and closes with the public one.
  return Layer.merge(server, MetricsListener.layer(config.metricsListen)).pipe(
    Layer.provideMerge(perNode),
    Layer.provideMerge(services),
    Layer.provideMerge(keysLayer(config))
  )
}
