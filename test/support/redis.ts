// A throwaway redis-server for tests: started from the binary on PATH on a free loopback port
// (or TIDINGS_TEST_REDIS_URL), stopped after. Its users are those docs/OPERATIONS.md gives, so
// every suite runs the gateway as its least-privileged ACL user; tests act beside it as admin.
// Where no redis-server exists the Redis suites are skipped with a reason, except in CI.
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll } from "@effect/vitest"
import { Redis as IORedis } from "ioredis"
import { type AclUser, ARCHIVIST, GATEWAY, rulesFor } from "../../src/interpreters/redis/Acl.ts"
import { freePort } from "./net.ts"

/** The users of every test redis-server, with their passwords. */
export const USERS = {
  /** The gateway's user: what every node (and interpreter under test) connects as. */
  gateway: { name: GATEWAY.name, password: "tidings-test-password" },
  /** The audit CLI's user (verify, archive). */
  archivist: { name: ARCHIVIST.name, password: "archivist-test-password" },
  /** The tests' own: flushing, inspecting, killing clients, making users. */
  admin: { name: "admin", password: "admin-test-password" }
} as const

export type TestUser = keyof typeof USERS

const userArgs = (user: AclUser, password: string) => ["--user", user.name, ...rulesFor(user, `>${password}`).split(" ")]

/**
 * redis-server arguments for those users (a restart keeps them: they are not data). The default
 * user is off: a connection that names no user is refused, so nothing runs as it by mistake. It
 * keeps its permissions: Redis 7.0 replays MULTI/EXEC from the append-only file under them, and
 * drops those transactions silently when it has none (the audit sink's batches, after a restart).
 */
export const usersArgs = (): Array<string> => [
  "--user", "default", "off", "~*", "&*", "+@all",
  "--user", USERS.admin.name, "on", `>${USERS.admin.password}`, "~*", "&*", "+@all",
  ...userArgs(GATEWAY, USERS.gateway.password),
  ...userArgs(ARCHIVIST, USERS.archivist.password)
]

/**
 * `ACL SETUSER` arguments for another user with the gateway's rules, for tests that cripple or
 * deafen one node from outside by changing its own user.
 */
export const gatewayUser = (name: string, password: string): Array<string> => [name, ...rulesFor(GATEWAY, `>${password}`).split(" ")]

/** A URL that logs in as `user`. */
export const urlAs = (user: TestUser, port: number, scheme: "redis" | "rediss" = "redis", host = "127.0.0.1") =>
  `${scheme}://${USERS[user].name}:${USERS[user].password}@${host}:${port}`

export const hasRedisServer = (() => {
  if (process.env.TIDINGS_TEST_REDIS_URL !== undefined) return true
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()

if (!hasRedisServer && (process.env.CI !== undefined || process.env.TIDINGS_REQUIRE_ALL_SUITES !== undefined)) {
  throw new Error("redis-server is not on PATH, and CI never skips the Redis suites")
}

/** Reason shown for a skipped Redis suite on a machine without redis-server. */
export const skipReason = "redis-server is not on PATH (install it to run the Redis suites)"

/**
 * Whether tests may kill and restart their Redis: not when TIDINGS_TEST_REDIS_URL points at
 * one they did not start (which must be a disposable Redis: tests write to it freely).
 */
export const canControlRedis = hasRedisServer && process.env.TIDINGS_TEST_REDIS_URL === undefined
export const controlSkipReason = "TIDINGS_TEST_REDIS_URL is set: the outage tests need a redis-server they start themselves"

export interface TestRedis {
  /** As the gateway's user. */
  readonly url: string
  /** As the admin: for what tests do beside the gateway. */
  readonly adminUrl: string
  /** As the audit CLI's user. */
  readonly archivistUrl: string
  readonly port: number
  /** Kills the server (SIGKILL: as abrupt as a crash). */
  readonly kill: () => Promise<void>
  /** Starts it again on the same port. */
  readonly restart: () => Promise<void>
  readonly stop: () => Promise<void>
}

/** Starts redis-server with these arguments; resolves once it accepts connections. */
export const spawnRedis = (args: ReadonlyArray<string>): Promise<ChildProcess> =>
  new Promise((resolve, reject) => {
    const child = spawn("redis-server", [...args], { stdio: ["ignore", "pipe", "pipe"] })
    const timer = setTimeout(() => reject(new Error("redis-server did not start")), 10_000)
    let output = ""
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes("Ready to accept connections")) {
        clearTimeout(timer)
        resolve(child)
      }
    })
    child.once("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`redis-server exited with ${code}`))
    })
  })

const launch = (port: number, dataDir: string | undefined): Promise<ChildProcess> =>
  // Persistent like production (append-only file, fsync each write) when asked, so a
  // restart keeps seq and history; otherwise nothing touches the disk.
  spawnRedis([
    "--port", String(port), "--bind", "127.0.0.1", ...usersArgs(),
    ...(dataDir === undefined
      ? ["--save", "", "--appendonly", "no"]
      : ["--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", dataDir])
  ])

/** Stops a redis-server child and waits for it to exit. */
export const exited = (child: ChildProcess, signal: NodeJS.Signals) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once("exit", () => resolve())
    child.kill(signal)
  })

export const startRedis = async (options: { readonly persistent?: boolean } = {}): Promise<TestRedis> => {
  const existing = process.env.TIDINGS_TEST_REDIS_URL
  if (existing !== undefined) {
    const noop = async () => undefined
    // Not ours to configure: every suite runs as whatever user the URL names.
    return { url: existing, adminUrl: existing, archivistUrl: existing, port: Number(new URL(existing).port), kill: noop, restart: noop, stop: noop }
  }
  const port = await freePort()
  const dataDir = options.persistent === true ? mkdtempSync(join(tmpdir(), "tidings-redis-")) : undefined
  let child = await launch(port, dataDir)
  return {
    url: urlAs("gateway", port),
    adminUrl: urlAs("admin", port),
    archivistUrl: urlAs("archivist", port),
    port,
    kill: () => exited(child, "SIGKILL"),
    restart: async () => {
      child = await launch(port, dataDir)
    },
    stop: async () => {
      await exited(child, "SIGTERM")
      if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true })
    }
  }
}

/**
 * A throwaway redis-server for one describe block, with an admin connection to it (for
 * flushing and inspecting): started before its tests, stopped after. Read the fields in tests.
 */
export const useRedis = () => {
  const handle = {} as { redis: TestRedis; admin: IORedis }
  beforeAll(async () => {
    handle.redis = await startRedis()
    handle.admin = new IORedis(handle.redis.adminUrl, { lazyConnect: true })
    await handle.admin.connect()
  })
  afterAll(async () => {
    await handle.admin?.quit()
    await handle.redis?.stop()
  })
  return handle
}
