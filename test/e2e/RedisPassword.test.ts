// The Redis password comes from a file (TIDINGS_REDIS_PASSWORD_FILE), like every other secret:
// a node reads it and works against a real redis-server as the gateway's ACL user, named in
// the URL or by TIDINGS_REDIS_USER (a cluster has no URL); a wrong one stops the start with one
// line (78) naming the setting, never the password; production refuses a password written
// into TIDINGS_REDIS_URL.
import type { ChildProcess } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Result } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Config from "../../src/Config.ts"
import { type Gateway, publishToSubscriber, startGateway } from "../support/gateway.ts"
import { withDataKey } from "../support/data-key.ts"
import { freePort } from "../support/net.ts"
import { exitOnly, useProcesses } from "../support/process.ts"
import { exited, hasRedisServer, skipReason, spawnRedis, USERS, usersArgs } from "../support/redis.ts"

useProcesses()

const PASSWORD = USERS.gateway.password

describe.skipIf(!hasRedisServer)(`a Redis whose users need a password${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  let redis: ChildProcess
  let port: number
  const dir = mkdtempSync(join(tmpdir(), "tidings-redis-pw-"))
  const right = join(dir, "redis-password")
  const wrong = join(dir, "redis-password-wrong")
  let gateway: Gateway | undefined

  beforeAll(async () => {
    port = await freePort()
    // No default user: whoever does not log in as a user is refused.
    redis = await spawnRedis(["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", ...usersArgs()])
    // As an editor saves it: with a trailing newline, which is not part of the password.
    writeFileSync(right, `${PASSWORD}\n`)
    writeFileSync(wrong, "not-the-password\n")
  })
  afterAll(async () => {
    await gateway?.close()
    await exited(redis, "SIGTERM")
  })

  it("serves with the password read from TIDINGS_REDIS_PASSWORD_FILE, the URL naming the user and holding no password", async () => {
    gateway = await startGateway({ TIDINGS_REDIS_URL: `redis://${USERS.gateway.name}@127.0.0.1:${port}`, TIDINGS_REDIS_PASSWORD_FILE: right })
    expect((await gateway.http("GET", "/readyz")).status).toBe(200)
    const through = await publishToSubscriber(gateway, "pt_password_001", "svc_password_01")
    expect(through.published).toBe(202)
    expect(through.event).toMatchObject({ seq: 1 })
    await gateway.close()
    gateway = undefined
  })

  it("serves as the user TIDINGS_REDIS_USER names, the URL naming none", async () => {
    gateway = await startGateway({
      TIDINGS_REDIS_URL: `redis://127.0.0.1:${port}`, TIDINGS_REDIS_USER: USERS.gateway.name, TIDINGS_REDIS_PASSWORD_FILE: right
    })
    expect((await gateway.http("GET", "/readyz")).status).toBe(200)
    const through = await publishToSubscriber(gateway, "pt_password_002", "svc_password_01")
    expect(through.published).toBe(202)
  })

  it("stops a start with a wrong password: one line naming the setting, exit 78, no password", async () => {
    const result = await exitOnly({ TIDINGS_REDIS_URL: `redis://${USERS.gateway.name}@127.0.0.1:${port}`, TIDINGS_REDIS_PASSWORD_FILE: wrong })
    expect(result.code).toBe(78)
    expect(result.stderr).toBe("tidings: TIDINGS_REDIS_PASSWORD_FILE (or the URL's user) was refused by Redis\n")
  })
})

describe("TIDINGS_REDIS_URL with a password in it", () => {
  const production = {
    TIDINGS_MODE: "production",
    TIDINGS_TLS_CERT_FILE: "/c.pem",
    TIDINGS_TLS_KEY_FILE: "/k.pem",
    TIDINGS_ALLOWED_ORIGINS: "https://app.example.org",
    TIDINGS_AUTH_ISSUER: "https://login.example.org",
    TIDINGS_AUTH_AUDIENCE: "tidings",
    TIDINGS_AUTH_JWKS_URL: "https://login.example.org/jwks",
    TIDINGS_TICKET_KEY_FILE: "/t.bin",
    TIDINGS_AUDIT_KEY_FILE: "/a.bin"
  }
  const problem = (env: Record<string, string>) => {
    const parsed = Config.parse(withDataKey(env))
    return Result.isFailure(parsed) ? parsed.failure : undefined
  }

  it("is refused in production, naming the file setting and not the password", () => {
    const failure = problem({ ...production, TIDINGS_REDIS_URL: "rediss://tidings:s3cret-in-env@redis.internal:6380" })
    expect(failure?.setting).toBe("TIDINGS_REDIS_URL")
    expect(failure?.problem).toContain("TIDINGS_REDIS_PASSWORD_FILE")
    expect(JSON.stringify(failure)).not.toContain("s3cret-in-env")
    expect(problem({ ...production, TIDINGS_REDIS_URL: "rediss://tidings@redis.internal:6380" })).toBeUndefined()
  })

  it("is refused beside TIDINGS_REDIS_USER when it names a user too, and TIDINGS_REDIS_USER must be a user name", () => {
    expect(problem({ TIDINGS_REDIS_URL: "redis://tidings@127.0.0.1:6390", TIDINGS_REDIS_USER: "tidings" })?.setting).toBe("TIDINGS_REDIS_USER")
    expect(problem({ TIDINGS_REDIS_URL: "redis://127.0.0.1:6390", TIDINGS_REDIS_USER: "tid ings" })?.setting).toBe("TIDINGS_REDIS_USER")
    expect(problem({ TIDINGS_REDIS_URL: "redis://127.0.0.1:6390", TIDINGS_REDIS_USER: "tidings" })).toBeUndefined()
    expect(problem({ TIDINGS_REDIS_CLUSTER: "127.0.0.1:7000", TIDINGS_REDIS_USER: "tidings" })).toBeUndefined()
  })

  it("is refused beside TIDINGS_REDIS_PASSWORD_FILE in dev, where it is otherwise still accepted", () => {
    expect(problem({ TIDINGS_REDIS_URL: "redis://:pw@127.0.0.1:6390", TIDINGS_REDIS_PASSWORD_FILE: "/pw" })?.setting).toBe("TIDINGS_REDIS_URL")
    expect(problem({ TIDINGS_REDIS_URL: "redis://:pw@127.0.0.1:6390" })).toBeUndefined()
  })
})
