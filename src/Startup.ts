// What a start checks before it writes anything: every file a setting names can be read, and
// no other Tidings process holds this data directory (or this node's audit files). A failed
// check is one line naming the setting or resource, never a value, and a documented exit code.
import { closeSync, openSync, readFileSync, readSync, unlinkSync, writeSync } from "node:fs"
import { join } from "node:path"
import type { AppConfig } from "./Config.ts"

/** Exit codes (sysexits.h), documented in the README. */
export const EXIT = {
  /** A setting is wrong, or a file it names cannot be used. */
  config: 78,
  /** A service the node cannot start without (Redis) did not answer. */
  unavailable: 69,
  /** Another process holds the data directory, the audit files or a port: already running? */
  inUse: 75
} as const

export interface StartProblem {
  readonly code: number
  /** One line: the setting or resource and what is wrong with it. */
  readonly line: string
}

const unreadable = (setting: string): StartProblem => ({ code: EXIT.config, line: `${setting} names a file that cannot be read` })

/** The files of the configuration, each with the setting that names it. */
const filesOf = (config: AppConfig): Array<readonly [string, string]> => [
  ...(config.tls._tag === "Files"
    ? [["TIDINGS_TLS_CERT_FILE", config.tls.certFile] as const, ["TIDINGS_TLS_KEY_FILE", config.tls.keyFile] as const]
    : []),
  ...(config.tlsClientCaFile === undefined ? [] : [["TIDINGS_TLS_CLIENT_CA", config.tlsClientCaFile] as const]),
  ...(config.redisPasswordFile === undefined ? [] : [["TIDINGS_REDIS_PASSWORD_FILE", config.redisPasswordFile] as const]),
  ...(config.redisCaFile === undefined ? [] : [["TIDINGS_REDIS_CA_FILE", config.redisCaFile] as const]),
  ...(config.ticketKeyFile === undefined ? [] : [["TIDINGS_TICKET_KEY_FILE", config.ticketKeyFile] as const]),
  ...config.previousTicketKeyFiles.map((file) => ["TIDINGS_TICKET_PREVIOUS_KEY_FILES", file] as const),
  ...(config.nextTicketKeyFile === undefined ? [] : [["TIDINGS_TICKET_NEXT_KEY_FILE", config.nextTicketKeyFile] as const]),
  ...(config.devIssuerKeyFile === undefined ? [] : [["TIDINGS_DEV_ISSUER_KEY_FILE", config.devIssuerKeyFile] as const]),
  ...(config.auth._tag === "Issuer" && config.auth.jwks._tag === "File" ? [["TIDINGS_AUTH_JWKS_FILE", config.auth.jwks.file] as const] : [])
]

/** Every named file readable, and the audit and data keys long enough; undefined when all is well. */
export const checkFiles = (config: AppConfig): StartProblem | undefined => {
  for (const [setting, file] of filesOf(config)) {
    try {
      readFileSync(file)
    } catch {
      return unreadable(setting)
    }
  }
  const keyFiles: Array<readonly [string, string]> = [
    ...(config.auditKeyFile === undefined ? [] : [["TIDINGS_AUDIT_KEY_FILE", config.auditKeyFile] as const]),
    ...(config.dataKeyFile === undefined ? [] : [["TIDINGS_DATA_KEY_FILE", config.dataKeyFile] as const]),
    ...config.previousDataKeyFiles.map((file) => ["TIDINGS_DATA_PREVIOUS_KEY_FILES", file] as const),
    ...(config.tlsResumptionKeyFile === undefined ? [] : [["TIDINGS_TLS_RESUMPTION_KEY_FILE", config.tlsResumptionKeyFile] as const])
  ]
  for (const [setting, file] of keyFiles) {
    let key: Buffer
    try {
      key = readFileSync(file)
    } catch {
      return unreadable(setting)
    }
    if (key.length < 32) return { code: EXIT.config, line: `${setting} must hold at least 32 bytes` }
  }
  return undefined
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists, it is just not ours to signal.
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

const holder = (path: string): number | undefined => {
  try {
    const fd = openSync(path, "r")
    try {
      const buffer = Buffer.alloc(32)
      const pid = Number(buffer.toString("utf8", 0, readSync(fd, buffer, 0, 32, 0)).trim())
      return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined
    } finally {
      closeSync(fd)
    }
  } catch {
    return undefined
  }
}

/**
 * Takes `<directory>/<name>` exclusively for this process (created with O_EXCL, holding our
 * pid) and gives it back at exit. A lock left by a process that is gone (kill -9) is taken
 * over. Answers false when a live process holds it.
 */
export const lock = (directory: string, name: string): boolean => {
  const path = join(directory, name)
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600)
      writeSync(fd, `${process.pid}\n`)
      closeSync(fd)
      process.once("exit", () => {
        if (holder(path) === process.pid) unlinkSync(path)
      })
      return true
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
      const pid = holder(path)
      if (pid !== undefined && alive(pid)) return false
      try {
        unlinkSync(path)
      } catch {
        // Another start removed it first; the next attempt decides.
      }
    }
  }
  return false
}

/** The `listen` failure of a port some other process holds, as its one line. */
export const portInUse = (error: unknown, config: AppConfig): StartProblem | undefined => {
  const e = error as { code?: unknown; port?: unknown } | undefined
  if (e?.code !== "EADDRINUSE") return undefined
  const setting = e.port === config.metricsListen.port ? "TIDINGS_METRICS_LISTEN" : "TIDINGS_LISTEN"
  return { code: EXIT.inUse, line: `${setting} is in use by another process (is Tidings already running?)` }
}
