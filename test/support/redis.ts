// A throwaway redis-server for tests: started from the binary on PATH on a free loopback port
// (or TIDINGS_TEST_REDIS_URL), stopped after. Where no redis-server exists the Redis suites
// are skipped with a reason, except in CI, where they must run.
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll } from "@effect/vitest"
import { Redis as IORedis } from "ioredis"
import { freePort } from "./net.ts"

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
  readonly url: string
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
    "--port", String(port), "--bind", "127.0.0.1",
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
    return { url: existing, port: Number(new URL(existing).port), kill: noop, restart: noop, stop: noop }
  }
  const port = await freePort()
  const dataDir = options.persistent === true ? mkdtempSync(join(tmpdir(), "tidings-redis-")) : undefined
  let child = await launch(port, dataDir)
  return {
    url: `redis://127.0.0.1:${port}`,
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
    handle.admin = new IORedis(handle.redis.url, { lazyConnect: true })
    await handle.admin.connect()
  })
  afterAll(async () => {
    await handle.admin?.quit()
    await handle.redis?.stop()
  })
  return handle
}
