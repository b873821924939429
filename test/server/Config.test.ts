// Config.parse (contract §1, §7): the dev defaults, what production requires, and that every
// bad setting is refused by name with a problem text that never repeats the value given.
import { Redacted, Result } from "effect"
import { inspect } from "node:util"
import { describe, expect, it } from "vitest"
import * as Config from "../../src/Config.ts"
import { DEFAULT_EVENT_KINDS } from "../../src/domain/Event.ts"

type Env = Record<string, string | undefined>

const ok = (env: Env): Config.AppConfig => {
  const parsed = Config.parse(env)
  if (Result.isFailure(parsed)) throw new Error(`expected success, got ${parsed.failure.setting} ${parsed.failure.problem}`)
  return parsed.success
}

const problem = (env: Env): Config.ConfigProblem => {
  const parsed = Config.parse(env)
  if (Result.isSuccess(parsed)) throw new Error("expected a config problem, got a config")
  return parsed.failure
}

// A user name but no password: production takes the password from TIDINGS_REDIS_PASSWORD_FILE.
const SECRET_REDIS = "rediss://tidings_gateway@redis.internal:6380/0"

/** Every setting production requires, as paths and URLs (parse never reads the files). */
const PRODUCTION: Env = {
  TIDINGS_MODE: "production",
  TIDINGS_TLS_CERT_FILE: "/etc/tidings/tls/cert.pem",
  TIDINGS_TLS_KEY_FILE: "/etc/tidings/tls/key.pem",
  TIDINGS_ALLOWED_ORIGINS: "https://app.example.org, https://portal.example.org:8443",
  TIDINGS_REDIS_URL: SECRET_REDIS,
  TIDINGS_AUTH_ISSUER: "https://login.example.org",
  TIDINGS_AUTH_AUDIENCE: "tidings",
  TIDINGS_AUTH_JWKS_URL: "https://login.example.org/.well-known/jwks.json",
  TIDINGS_TICKET_KEY_FILE: "/etc/tidings/ticket.pem",
  TIDINGS_AUDIT_KEY_FILE: "/etc/tidings/audit.key",
  TIDINGS_DATA_KEY_FILE: "/etc/tidings/data.key"
}

/** The order production checks its required settings in: the first missing one is named. */
const REQUIRED_IN_ORDER = [
  "TIDINGS_TLS_CERT_FILE",
  "TIDINGS_TLS_KEY_FILE",
  "TIDINGS_ALLOWED_ORIGINS",
  "TIDINGS_REDIS_URL",
  "TIDINGS_AUTH_ISSUER",
  "TIDINGS_TICKET_KEY_FILE",
  "TIDINGS_AUDIT_KEY_FILE",
  "TIDINGS_DATA_KEY_FILE"
]

describe("Config.parse in dev mode", () => {
  it("defaults to loopback 8443, a self-signed certificate, the dev issuer and the dev origins", () => {
    const config = ok({})
    expect(config.mode).toBe("dev")
    expect(config.listen).toEqual({ host: "127.0.0.1", port: 8443 })
    expect(config.tls).toEqual({ _tag: "SelfSigned" })
    expect(config.auth).toEqual({ _tag: "DevIssuer" })
    expect([...config.allowedOrigins].sort()).toEqual(
      ["http://localhost:3000", "http://localhost:5173", "https://localhost:8443"]
    )
    expect(config.redisUrl).toBeUndefined()
    expect(config.ticketKeyFile).toBeUndefined()
    expect(config.auditKeyFile).toBeUndefined()
    expect(config.auditSink).toEqual({ _tag: "File", directory: ".data/audit", maxFileBytes: 64 * 1024 * 1024 })
  })

  it("defaults the heartbeat to 25 s, sessions to 12 h and 900 s idle, 5 sessions per subject", () => {
    const config = ok({})
    expect(config.heartbeatS).toBe(25)
    expect(config.settings.sessionMaxS).toBe(43_200)
    expect(config.settings.idleTimeoutS).toBe(900)
    expect(config.settings.maxSessionsPerSubject).toBe(5)
    expect([...config.settings.eventKinds].sort()).toEqual([...DEFAULT_EVENT_KINDS].sort())
    expect(config.metricsListen).toEqual({ host: "127.0.0.1", port: 9464 })
  })

  it("takes explicit values for the tunable settings", () => {
    const config = ok({
      TIDINGS_LISTEN: "[::1]:9443",
      TIDINGS_HEARTBEAT_S: "30",
      TIDINGS_SESSION_MAX_S: "3600",
      TIDINGS_IDLE_TIMEOUT_S: "60",
      TIDINGS_MAX_SESSIONS_PER_SUBJECT: "2",
      TIDINGS_EVENT_KINDS: "lab.result_ready, message.received",
      TIDINGS_AUDIT_SINK: "file:/var/log/tidings",
      TIDINGS_AUDIT_FILE_MAX_BYTES: "1048576"
    })
    expect(config.listen).toEqual({ host: "::1", port: 9443 })
    expect(config.heartbeatS).toBe(30)
    expect(config.settings.sessionMaxS).toBe(3600)
    expect(config.settings.idleTimeoutS).toBe(60)
    expect(config.settings.maxSessionsPerSubject).toBe(2)
    expect([...config.settings.eventKinds]).toEqual(["lab.result_ready", "message.received"])
    expect(config.auditSink).toEqual({ _tag: "File", directory: "/var/log/tidings", maxFileBytes: 1_048_576 })
  })

  it("uses certificate files when both are set", () => {
    expect(ok({ TIDINGS_TLS_CERT_FILE: "/c.pem", TIDINGS_TLS_KEY_FILE: "/k.pem" }).tls).toEqual({
      _tag: "Files", certFile: "/c.pem", keyFile: "/k.pem"
    })
  })

  it("uses an external issuer when one is configured, with a JWKS file or an https URL", () => {
    const file = ok({ TIDINGS_AUTH_ISSUER: "https://i.example", TIDINGS_AUTH_AUDIENCE: "aud", TIDINGS_AUTH_JWKS_FILE: "/jwks.json" })
    expect(file.auth).toEqual({
      _tag: "Issuer", issuer: "https://i.example", audience: "aud", jwks: { _tag: "File", file: "/jwks.json" }
    })
    const url = ok({ TIDINGS_AUTH_ISSUER: "https://i.example", TIDINGS_AUTH_AUDIENCE: "aud", TIDINGS_AUTH_JWKS_URL: "https://i.example/jwks" })
    expect(url.auth._tag).toBe("Issuer")
    expect(url.auth._tag === "Issuer" && url.auth.jwks._tag === "Url" && url.auth.jwks.url.href).toBe("https://i.example/jwks")
  })
})

describe("Config.parse in production", () => {
  it("refuses to start with nothing set, naming the first missing setting", () => {
    const failure = problem({ TIDINGS_MODE: "production" })
    expect(failure.setting).toBe("TIDINGS_TLS_CERT_FILE")
    expect(failure.problem).toMatch(/required/)
  })

  it("names each required setting in turn as the first one missing", () => {
    for (const name of REQUIRED_IN_ORDER) {
      const env = { ...PRODUCTION, [name]: undefined }
      expect(problem(env).setting, `without ${name}`).toBe(name)
    }
  })

  it("treats a setting of only whitespace as missing", () => {
    expect(problem({ ...PRODUCTION, TIDINGS_AUDIT_KEY_FILE: "   " }).setting).toBe("TIDINGS_AUDIT_KEY_FILE")
  })

  it("requires an audience and a JWKS source with the issuer", () => {
    expect(problem({ ...PRODUCTION, TIDINGS_AUTH_AUDIENCE: undefined }).setting).toBe("TIDINGS_AUTH_AUDIENCE")
    expect(problem({ ...PRODUCTION, TIDINGS_AUTH_JWKS_URL: undefined }).setting).toBe("TIDINGS_AUTH_JWKS_URL")
  })

  it("starts with every required setting and listens on every interface, port 8443", () => {
    const config = ok(PRODUCTION)
    expect(config.mode).toBe("production")
    expect(config.listen).toEqual({ host: "0.0.0.0", port: 8443 })
    expect(config.tls).toEqual({ _tag: "Files", certFile: "/etc/tidings/tls/cert.pem", keyFile: "/etc/tidings/tls/key.pem" })
    expect([...config.allowedOrigins].sort()).toEqual(["https://app.example.org", "https://portal.example.org:8443"])
    expect(config.auth).toMatchObject({ _tag: "Issuer", issuer: "https://login.example.org", audience: "tidings" })
    expect(config.ticketKeyFile).toBe("/etc/tidings/ticket.pem")
    expect(config.auditKeyFile).toBe("/etc/tidings/audit.key")
  })

  it("starts with a JWKS file instead of a URL", () => {
    const config = ok({ ...PRODUCTION, TIDINGS_AUTH_JWKS_URL: undefined, TIDINGS_AUTH_JWKS_FILE: "/etc/tidings/jwks.json" })
    expect(config.auth).toMatchObject({ _tag: "Issuer", jwks: { _tag: "File", file: "/etc/tidings/jwks.json" } })
  })

  it("has no dev origins to fall back on", () => {
    const config = ok(PRODUCTION)
    expect(config.allowedOrigins.has("https://localhost:8443")).toBe(false)
    expect(config.allowedOrigins.has("http://localhost:5173")).toBe(false)
  })

  it("refuses the dev issuer", () => {
    const failure = problem({ ...PRODUCTION, TIDINGS_DEV_ISSUER: "true" })
    expect(failure.setting).toBe("TIDINGS_DEV_ISSUER")
  })

  it("holds the Redis URL as a redacted value that never prints", () => {
    const config = ok(PRODUCTION)
    expect(Redacted.isRedacted(config.redisUrl)).toBe(true)
    expect(Redacted.value(config.redisUrl!)).toBe(SECRET_REDIS)
    for (const shown of [String(config.redisUrl), `${config.redisUrl}`, JSON.stringify(config), inspect(config, { depth: 10 })]) {
      expect(shown).not.toContain("tidings_gateway")
      expect(shown).not.toContain("redis.internal")
    }
  })
})

describe("Config.parse refuses a bad value by its setting's name", () => {
  const cases: ReadonlyArray<readonly [string, Env, string]> = [
    ["a port over 65535", { TIDINGS_LISTEN: "127.0.0.1:99999" }, "TIDINGS_LISTEN"],
    ["port 0", { TIDINGS_LISTEN: "127.0.0.1:0" }, "TIDINGS_LISTEN"],
    ["a listen address without a port", { TIDINGS_LISTEN: "nonsense" }, "TIDINGS_LISTEN"],
    ["a heartbeat that is not a number", { TIDINGS_HEARTBEAT_S: "abc" }, "TIDINGS_HEARTBEAT_S"],
    ["a heartbeat that is not whole", { TIDINGS_HEARTBEAT_S: "25.5" }, "TIDINGS_HEARTBEAT_S"],
    ["a heartbeat below its floor", { TIDINGS_HEARTBEAT_S: "0" }, "TIDINGS_HEARTBEAT_S"],
    ["a negative session cap", { TIDINGS_MAX_SESSIONS_PER_SUBJECT: "-1" }, "TIDINGS_MAX_SESSIONS_PER_SUBJECT"],
    ["an origin with a path", { TIDINGS_ALLOWED_ORIGINS: "https://app.example.org/login" }, "TIDINGS_ALLOWED_ORIGINS"],
    ["an origin with a trailing slash", { TIDINGS_ALLOWED_ORIGINS: "https://app.example.org/" }, "TIDINGS_ALLOWED_ORIGINS"],
    ["a wildcard origin", { TIDINGS_ALLOWED_ORIGINS: "*" }, "TIDINGS_ALLOWED_ORIGINS"],
    ["a wildcard subdomain origin", { TIDINGS_ALLOWED_ORIGINS: "https://*.example.org" }, "TIDINGS_ALLOWED_ORIGINS"],
    ["the null origin", { TIDINGS_ALLOWED_ORIGINS: "https://app.example.org,null" }, "TIDINGS_ALLOWED_ORIGINS"],
    [
      "a JWKS URL over plain http",
      { TIDINGS_AUTH_ISSUER: "https://i.example", TIDINGS_AUTH_AUDIENCE: "a", TIDINGS_AUTH_JWKS_URL: "http://i.example/jwks" },
      "TIDINGS_AUTH_JWKS_URL"
    ],
    ["an unknown mode", { TIDINGS_MODE: "staging" }, "TIDINGS_MODE"],
    ["an event kind without a dot", { TIDINGS_EVENT_KINDS: "appointment" }, "TIDINGS_EVENT_KINDS"],
    ["an event kind with capitals", { TIDINGS_EVENT_KINDS: "appointment.updated,Lab.Result" }, "TIDINGS_EVENT_KINDS"],
    ["an event kind with a wildcard", { TIDINGS_EVENT_KINDS: "appointment.*" }, "TIDINGS_EVENT_KINDS"],
    ["a certificate without its key", { TIDINGS_TLS_CERT_FILE: "/c.pem" }, "TIDINGS_TLS_KEY_FILE"],
    ["a key without its certificate", { TIDINGS_TLS_KEY_FILE: "/k.pem" }, "TIDINGS_TLS_CERT_FILE"],
    ["a Redis URL of another scheme", { TIDINGS_REDIS_URL: "http://redis.internal" }, "TIDINGS_REDIS_URL"],
    ["a dev issuer flag that is not a boolean", { TIDINGS_DEV_ISSUER: "yes" }, "TIDINGS_DEV_ISSUER"],
    ["the dev issuer turned off with no issuer instead", { TIDINGS_DEV_ISSUER: "false" }, "TIDINGS_AUTH_ISSUER"],
    ["a per-address connect limit of zero", { TIDINGS_RATE_CONNECTS_PER_IP_PER_MIN: "0" }, "TIDINGS_RATE_CONNECTS_PER_IP_PER_MIN"],
    ["a body limit below 1 KiB", { TIDINGS_MAX_BODY_BYTES: "100" }, "TIDINGS_MAX_BODY_BYTES"],
    ["zero subscriptions per connection", { TIDINGS_MAX_SUBSCRIPTIONS_PER_CONNECTION: "0" }, "TIDINGS_MAX_SUBSCRIPTIONS_PER_CONNECTION"],
    ["previous ticket keys without a current one", { TIDINGS_TICKET_PREVIOUS_KEY_FILES: "/old.pem" }, "TIDINGS_TICKET_KEY_FILE"],
    ["a per-address ticket limit that is not a number", { TIDINGS_RATE_TICKETS_PER_IP_PER_MIN: "lots" }, "TIDINGS_RATE_TICKETS_PER_IP_PER_MIN"],
    ["an unknown audit sink", { TIDINGS_AUDIT_SINK: "syslog" }, "TIDINGS_AUDIT_SINK"],
    ["the redis audit sink without Redis", { TIDINGS_AUDIT_SINK: "redis" }, "TIDINGS_AUDIT_SINK"],
    ["audit files smaller than 4 KiB", { TIDINGS_AUDIT_FILE_MAX_BYTES: "100" }, "TIDINGS_AUDIT_FILE_MAX_BYTES"],
    ["a node id that could be a path", { TIDINGS_NODE_ID: "../etc" }, "TIDINGS_NODE_ID"],
    ["an unknown log level", { TIDINGS_LOG_LEVEL: "verbose" }, "TIDINGS_LOG_LEVEL"]
  ]
  for (const [what, env, setting] of cases) {
    it(`refuses ${what} (${setting})`, () => {
      expect(problem(env).setting).toBe(setting)
    })
  }

  it("refuses a malformed https JWKS URL as a config problem, not a crash", () => {
    // `^https://` passes, then `new URL` throws a TypeError carrying the input: main would die
    // with a stack trace (and the value) instead of one line and exit 78.
    for (const url of ["https://", "https://exa mple.org/jwks"]) {
      const env = { TIDINGS_AUTH_ISSUER: "https://i.example", TIDINGS_AUTH_AUDIENCE: "a", TIDINGS_AUTH_JWKS_URL: url }
      let failure: Config.ConfigProblem | undefined
      expect(() => (failure = problem(env))).not.toThrow()
      expect(failure?.setting).toBe("TIDINGS_AUTH_JWKS_URL")
    }
  })

  it("never repeats the bad value in the problem it reports", () => {
    const canary = "JohnDoeMRN123456"
    const cases: ReadonlyArray<Env> = [
      { TIDINGS_MODE: canary },
      { TIDINGS_LISTEN: canary },
      { TIDINGS_LISTEN: `${canary}:99999` },
      { TIDINGS_HEARTBEAT_S: canary },
      { TIDINGS_SESSION_MAX_S: canary },
      { TIDINGS_IDLE_TIMEOUT_S: canary },
      { TIDINGS_MAX_SESSIONS_PER_SUBJECT: canary },
      { TIDINGS_ALLOWED_ORIGINS: `https://${canary}.example/path` },
      { TIDINGS_REDIS_URL: `http://${canary}` },
      { TIDINGS_DEV_ISSUER: canary },
      { TIDINGS_AUTH_ISSUER: "https://i.example", TIDINGS_AUTH_AUDIENCE: "a", TIDINGS_AUTH_JWKS_URL: `http://${canary}` },
      { TIDINGS_AUDIT_SINK: canary },
      { TIDINGS_EVENT_KINDS: canary },
      { TIDINGS_LOG_LEVEL: canary },
      { TIDINGS_METRICS_LISTEN: canary },
      { TIDINGS_RATE_MESSAGES_PER_S: canary },
      { TIDINGS_TLS_CERT_FILE: `/${canary}.pem` },
      { ...PRODUCTION, TIDINGS_DEV_ISSUER: "true", TIDINGS_REDIS_URL: `rediss://:${canary}@r:6379` }
    ]
    for (const env of cases) {
      const failure = problem(env)
      expect(failure.problem, JSON.stringify(env)).not.toContain(canary)
      expect(failure.setting).not.toContain(canary)
      expect(failure.setting).toMatch(/^TIDINGS_[A-Z_]+$/)
    }
  })
})

describe("Config.parse and the data key", () => {
  it("requires TIDINGS_DATA_KEY_FILE whenever a Redis is set, in dev mode too", () => {
    expect(problem({ TIDINGS_REDIS_URL: "redis://127.0.0.1:6390" }).setting).toBe("TIDINGS_DATA_KEY_FILE")
    expect(problem({ TIDINGS_REDIS_CLUSTER: "127.0.0.1:7000" }).setting).toBe("TIDINGS_DATA_KEY_FILE")
    expect(problem({ ...PRODUCTION, TIDINGS_DATA_KEY_FILE: undefined }).setting).toBe("TIDINGS_DATA_KEY_FILE")
  })

  it("needs no data key without Redis, and refuses previous keys without a current one", () => {
    expect(ok({}).dataKeyFile).toBeUndefined()
    expect(problem({ TIDINGS_DATA_PREVIOUS_KEY_FILES: "/old.key" }).setting).toBe("TIDINGS_DATA_KEY_FILE")
  })

  it("reads previous data keys as a comma list", () => {
    expect(ok({ ...PRODUCTION, TIDINGS_DATA_PREVIOUS_KEY_FILES: "/a.key, /b.key," }).previousDataKeyFiles).toEqual(["/a.key", "/b.key"])
  })
})
