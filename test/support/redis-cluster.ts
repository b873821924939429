// A throwaway 3-master Redis Cluster for tests, from redis-server processes on free loopback
// ports: slots split in three with CLUSTER ADDSLOTSRANGE, nodes introduced with CLUSTER MEET,
// ready once every node reports cluster_state:ok. No redis-cli needed. With `tls`, every node
// speaks TLS only, clients and the cluster bus alike. Every node has the users of redis.ts:
// gateways connect as the least-privileged one, the setup as admin.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Redis } from "ioredis"
import { freePort } from "./net.ts"
import { exited, spawnRedis, USERS, usersArgs } from "./redis.ts"
import { type RedisCertificates, tlsOnlyArgs } from "./redis-tls.ts"

export interface TestCluster {
  readonly nodes: ReadonlyArray<{ readonly host: string; readonly port: number }>
  /** "host:port,host:port,host:port", as TIDINGS_REDIS_CLUSTER takes it. */
  readonly setting: string
  /** A node's settings for this cluster, as the gateway's ACL user (its password in a file). */
  readonly env: { readonly TIDINGS_REDIS_CLUSTER: string; readonly TIDINGS_REDIS_USER: string; readonly TIDINGS_REDIS_PASSWORD_FILE: string }
  /** ioredis options that log in as a user (for the nodes, or a Cluster client's redisOptions). */
  readonly loginAs: (user: keyof typeof USERS) => { readonly username: string; readonly password: string }
  readonly stop: () => Promise<void>
}

const SLOTS = 16384

const launch = (port: number, dir: string, tls: RedisCertificates | undefined) =>
  spawnRedis([
    ...(tls === undefined ? ["--port", String(port)] : [...tlsOnlyArgs(port, tls), "--tls-cluster", "yes"]),
    "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", ...usersArgs(),
    "--cluster-enabled", "yes", "--cluster-config-file", join(dir, `nodes-${port}.conf`),
    "--cluster-node-timeout", "2000", "--dir", dir
  ])

export const startCluster = async (options: { readonly tls?: RedisCertificates } = {}): Promise<TestCluster> => {
  const dir = mkdtempSync(join(tmpdir(), "tidings-cluster-"))
  const ports = [await freePort(), await freePort(), await freePort()]
  const children = await Promise.all(ports.map((port) => launch(port, dir, options.tls)))
  const tls = options.tls === undefined ? {} : { tls: { ca: readFileSync(options.tls.ca, "utf8") } }
  const loginAs = (user: keyof typeof USERS) => ({ username: USERS[user].name, password: USERS[user].password })
  const admins = ports.map((port) => new Redis({ host: "127.0.0.1", port, lazyConnect: true, ...tls, ...loginAs("admin") }))
  try {
    await Promise.all(admins.map((admin) => admin.connect()))
    const third = Math.floor(SLOTS / 3)
    const ranges = [[0, third - 1], [third, 2 * third - 1], [2 * third, SLOTS - 1]] as const
    await Promise.all(admins.map((admin, i) => admin.call("CLUSTER", "ADDSLOTSRANGE", ranges[i]![0], ranges[i]![1])))
    for (const port of ports.slice(1)) await admins[0]!.call("CLUSTER", "MEET", "127.0.0.1", port)
    const started = Date.now()
    for (;;) {
      const states = await Promise.all(admins.map((admin) => admin.call("CLUSTER", "INFO") as Promise<string>))
      if (states.every((info) => info.includes("cluster_state:ok") && info.includes("cluster_known_nodes:3"))) break
      if (Date.now() - started > 15_000) throw new Error("the test cluster did not become ready")
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  } finally {
    for (const admin of admins) admin.disconnect()
  }
  const nodes = ports.map((port) => ({ host: "127.0.0.1", port }))
  const setting = nodes.map((n) => `${n.host}:${n.port}`).join(",")
  const passwordFile = join(dir, "redis-password")
  writeFileSync(passwordFile, `${USERS.gateway.password}\n`)
  return {
    nodes,
    setting,
    env: { TIDINGS_REDIS_CLUSTER: setting, TIDINGS_REDIS_USER: USERS.gateway.name, TIDINGS_REDIS_PASSWORD_FILE: passwordFile },
    loginAs,
    stop: async () => {
      await Promise.all(children.map((child) => exited(child, "SIGTERM")))
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
