// TLS to Redis (`rediss://`), against a real redis-server that speaks only TLS (`--port 0`):
// a node trusting the test CA (TIDINGS_REDIS_CA_FILE) serves over it; one that does not trust
// the certificate stops at start with one line (69), as does a CA file that cannot be read (78).
// The CA and the server certificate are made here with the openssl CLI, as an operator would.
import type { ChildProcess } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Result } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Config from "../../src/Config.ts"
import { type Gateway, publishToSubscriber, startGateway } from "../support/gateway.ts"
import { freePort } from "../support/net.ts"
import { exitOnly, expectOneLine, useProcesses } from "../support/process.ts"
import { withDataKey } from "../support/data-key.ts"
import { exited, hasRedisServer, skipReason, spawnRedis, urlAs, usersArgs } from "../support/redis.ts"
import { startCluster, type TestCluster } from "../support/redis-cluster.ts"
import { makeRedisCertificates, type RedisCertificates, tlsOnlyArgs } from "../support/redis-tls.ts"

useProcesses()

describe.skipIf(!hasRedisServer)(`a Redis reached over TLS${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  const dir = mkdtempSync(join(tmpdir(), "tidings-redis-tls-"))
  let files: RedisCertificates
  let redis: ChildProcess
  let url: string
  let gateway: Gateway | undefined

  beforeAll(async () => {
    files = makeRedisCertificates(dir)
    const port = await freePort()
    // No plain port at all: whatever reaches this Redis went over TLS.
    redis = await spawnRedis([...tlsOnlyArgs(port, files), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", ...usersArgs()])
    url = urlAs("gateway", port, "rediss", "localhost")
  })
  afterAll(async () => {
    await gateway?.close()
    await exited(redis, "SIGTERM")
    rmSync(dir, { recursive: true, force: true })
  })

  it("serves over rediss:// with the certificate verified against TIDINGS_REDIS_CA_FILE", async () => {
    gateway = await startGateway({ TIDINGS_REDIS_URL: url, TIDINGS_REDIS_CA_FILE: files.ca })
    expect((await gateway.http("GET", "/readyz")).status).toBe(200)
    const through = await publishToSubscriber(gateway, "pt_redis_tls_001", "svc_redis_tls_01")
    expect(through.published).toBe(202)
    expect(through.event).toMatchObject({ seq: 1 })
  })

  it("stops a start whose Redis presents a certificate it does not trust: one line, exit 69", async () => {
    // Without the CA file only the system CAs are trusted, and none of them signed the test CA.
    const result = await exitOnly({ TIDINGS_REDIS_URL: url })
    expect(result.code).toBe(69)
    expect(result.stderr).toBe("tidings: TIDINGS_REDIS_URL presented a certificate that is not trusted (TIDINGS_REDIS_CA_FILE)\n")
  })

  it("stops a start whose TIDINGS_REDIS_CA_FILE cannot be read: one line naming the setting, exit 78", async () => {
    const result = await exitOnly({ TIDINGS_REDIS_URL: url, TIDINGS_REDIS_CA_FILE: join(dir, "no-such-ca.pem") })
    expect(result.code).toBe(78)
    expectOneLine(result.stderr, "TIDINGS_REDIS_CA_FILE names a file that cannot be read")
  })
})

describe.skipIf(!hasRedisServer)(`a Redis Cluster reached over TLS${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  const dir = mkdtempSync(join(tmpdir(), "tidings-cluster-tls-"))
  let cluster: TestCluster
  let gateway: Gateway | undefined

  beforeAll(async () => {
    // Its nodes speak TLS only, to clients and to each other, and announce themselves by IP.
    cluster = await startCluster({ tls: makeRedisCertificates(dir) })
  }, 60_000)
  afterAll(async () => {
    await gateway?.close()
    await cluster?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it("serves with TIDINGS_REDIS_CA_FILE, which turns TLS on for every node's connection", async () => {
    gateway = await startGateway({ ...cluster.env, TIDINGS_REDIS_CA_FILE: join(dir, "ca.pem") })
    expect((await gateway.http("GET", "/readyz")).status).toBe(200)
    const through = await publishToSubscriber(gateway, "pt_cluster_tls_01", "svc_cluster_tls")
    expect(through.published).toBe(202)
    expect(through.event).toMatchObject({ seq: 1 })
  })

  it("stops a start whose cluster presents certificates another CA signed: one line, exit 69", async () => {
    const other = makeRedisCertificates(mkdtempSync(join(dir, "other-")))
    const result = await exitOnly({ ...cluster.env, TIDINGS_REDIS_CA_FILE: other.ca })
    expect(result.code).toBe(69)
    expect(result.stderr).toBe("tidings: TIDINGS_REDIS_CLUSTER presented a certificate that is not trusted (TIDINGS_REDIS_CA_FILE)\n")
  })
})

describe("TIDINGS_REDIS_CA_FILE", () => {
  const problem = (env: Record<string, string>) => {
    const parsed = Config.parse(withDataKey(env))
    return Result.isFailure(parsed) ? parsed.failure : undefined
  }

  it("is refused beside a plain redis:// URL, which would never use it", () => {
    expect(problem({ TIDINGS_REDIS_URL: "redis://127.0.0.1:6390", TIDINGS_REDIS_CA_FILE: "/ca.pem" })?.setting).toBe("TIDINGS_REDIS_CA_FILE")
  })

  it("is refused without any Redis", () => {
    expect(problem({ TIDINGS_REDIS_CA_FILE: "/ca.pem" })?.setting).toBe("TIDINGS_REDIS_CA_FILE")
  })

  it("is accepted with a rediss:// URL or a cluster (whose nodes it then reaches over TLS)", () => {
    expect(problem({ TIDINGS_REDIS_URL: "rediss://localhost:6390", TIDINGS_REDIS_CA_FILE: "/ca.pem" })).toBeUndefined()
    expect(problem({ TIDINGS_REDIS_CLUSTER: "127.0.0.1:7000", TIDINGS_REDIS_CA_FILE: "/ca.pem" })).toBeUndefined()
  })
})
