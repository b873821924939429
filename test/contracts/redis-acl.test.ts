// The Redis ACL users of interpreters/redis/Acl.ts, against a real redis-server: they are the
// lines docs/OPERATIONS.md gives, every command a Lua script calls is granted (Redis checks a
// script's commands too), and what the gateway never sends is refused (NOPERM). That the
// gateway needs nothing more is shown by every Redis suite: test/support/redis.ts starts each
// redis-server with these users, and the gateways and interpreters under test connect as them.
import { readdirSync, readFileSync } from "node:fs"
import { connect } from "node:net"
import { join, resolve } from "node:path"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ARCHIVIST, GATEWAY, rulesFor } from "../../src/interpreters/redis/Acl.ts"
import { hasRedisServer, skipReason, startRedis, type TestRedis } from "../support/redis.ts"

const ROOT = resolve(import.meta.dirname, "../..")
const operations = readFileSync(join(ROOT, "docs/OPERATIONS.md"), "utf8")

/** The commands a rule string grants (`+get` → `get`). */
const granted = (rules: string) => new Set(rules.split(" ").filter((rule) => rule.startsWith("+")).map((rule) => rule.slice(1)))

describe("the Redis ACL users as documented", () => {
  it("are the ACL SETUSER lines and aclfile lines docs/OPERATIONS.md shows", () => {
    for (const user of [GATEWAY, ARCHIVIST]) {
      expect(operations).toContain(`ACL SETUSER ${user.name} ${rulesFor(user, ">‹password›")}\n`)
      expect(operations).toContain(`user ${user.name} ${rulesFor(user, "#‹sha256 of the password, hex›")}\n`)
    }
  })

  it("grant the gateway every command its Lua scripts call", () => {
    const dir = join(ROOT, "src/interpreters/redis")
    const called = readdirSync(dir).flatMap((file) =>
      [...readFileSync(join(dir, file), "utf8").matchAll(/redis\.p?call\(\s*'([A-Za-z]+)'/g)].map((match) => match[1]!.toLowerCase())
    )
    expect(called.length).toBeGreaterThan(0)
    const grants = granted(GATEWAY.rules)
    expect(called.filter((command) => !grants.has(command))).toEqual([])
  })
})

describe.skipIf(!hasRedisServer)(`the Redis ACL users on a real Redis${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  let redis: TestRedis
  let gateway: Redis
  let archivist: Redis
  beforeAll(async () => {
    redis = await startRedis()
    gateway = new Redis(redis.url)
    archivist = new Redis(redis.archivistUrl)
  })
  afterAll(async () => {
    gateway?.disconnect()
    archivist?.disconnect()
    await redis?.stop()
  })

  const refusal = (run: Promise<unknown>) => run.then(() => "answered", (error: Error) => error.message.split(" ")[0])

  it("lets the gateway's user work on tdg: keys and channels", async () => {
    expect(await gateway.set("tdg:acl:probe", "1")).toBe("OK")
    expect(await gateway.getdel("tdg:acl:probe")).toBe("1")
    expect(await gateway.publish("tdg:control", "{}")).toBe(0)
  })

  it("refuses the gateway's user everything else: FLUSHALL, KEYS *, CONFIG GET, a key or channel outside tdg:, ACL, CLIENT, SCAN, SCRIPT, DEBUG, MONITOR", async () => {
    expect(await refusal(gateway.flushall())).toBe("NOPERM")
    expect(await refusal(gateway.keys("*"))).toBe("NOPERM")
    expect(await refusal(gateway.config("GET", "*"))).toBe("NOPERM")
    expect(await refusal(gateway.get("session:elsewhere"))).toBe("NOPERM")
    expect(await refusal(gateway.set("elsewhere", "1"))).toBe("NOPERM")
    expect(await refusal(gateway.publish("elsewhere", "{}"))).toBe("NOPERM")
    expect(await refusal(gateway.call("ACL", "LIST"))).toBe("NOPERM")
    expect(await refusal(gateway.call("CLIENT", "LIST"))).toBe("NOPERM")
    expect(await refusal(gateway.call("SCAN", "0"))).toBe("NOPERM")
    expect(await refusal(gateway.call("FLUSHDB"))).toBe("NOPERM")
    expect(await refusal(gateway.call("SCRIPT", "FLUSH"))).toBe("NOPERM")
    // Those a client cannot be shown refused directly (DEBUG is off in Redis 7 for everyone;
    // MONITOR takes over the connection), Redis judges for the user without running them.
    const admin = new Redis(redis.adminUrl)
    try {
      for (const command of [["DEBUG", "SLEEP", "0"], ["MONITOR"], ["SHUTDOWN"], ["SUBSCRIBE", "elsewhere"]]) {
        expect(await admin.call("ACL", "DRYRUN", GATEWAY.name, ...command), command[0]).toMatch(/^This user has no permissions/)
      }
      expect(await admin.call("ACL", "DRYRUN", GATEWAY.name, "SSUBSCRIBE", "tdg:{patient:pt_x}:events")).toBe("OK")
    } finally {
      admin.disconnect()
    }
    // A script runs with its caller's rights: it cannot reach outside either.
    expect(await refusal(gateway.eval("return redis.call('GET', KEYS[1])", 1, "elsewhere"))).toBe("NOPERM")
    expect(await refusal(gateway.eval("return redis.call('FLUSHALL')", 0))).toBe("ERR")
  })

  it("lets the audit CLI's user read and trim the audit streams, and nothing else", async () => {
    const admin = new Redis(redis.adminUrl)
    try {
      await admin.xadd("tdg:audit:{acl}", "*", "r", "{}")
      expect(await archivist.xlen("tdg:audit:{acl}")).toBe(1)
      expect((await archivist.xrange("tdg:audit:{acl}", "-", "+")).length).toBe(1)
      expect(await archivist.xtrim("tdg:audit:{acl}", "MAXLEN", 0)).toBe(1)
      expect(await refusal(archivist.xadd("tdg:audit:{acl}", "*", "r", "{}"))).toBe("NOPERM")
      expect(await refusal(archivist.get("tdg:ticket:x"))).toBe("NOPERM")
      expect(await refusal(archivist.subscribe("tdg:control"))).toBe("NOPERM")
    } finally {
      admin.disconnect()
    }
  })

  it("refuses a connection that names no user: the default user is off", async () => {
    // Plain RESP over a socket: what a client that never sends AUTH or HELLO is told.
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect(redis.port, "127.0.0.1", () => socket.write("GET tdg:x\r\n"))
      socket.once("data", (data) => (socket.destroy(), resolve(data.toString())))
      socket.once("error", reject)
    })
    expect(reply).toBe("-NOAUTH Authentication required.\r\n")
  })
})
