// Rolling a new ticket key across a gateway takes two phases: every node first accepts the new
// key (TIDINGS_TICKET_NEXT_KEY_FILE), then every node signs with it (the old one kept in
// TIDINGS_TICKET_PREVIOUS_KEY_FILES). Two real nodes on one real redis-server, over wss://;
// the one-phase roll the docs used to describe is shown failing, which is why there are two.
import { randomBytes } from "node:crypto"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Gateway, startGateway } from "../support/gateway.ts"
import { hasRedisServer, skipReason, startRedis, type TestRedis } from "../support/redis.ts"

describe.skipIf(!hasRedisServer)(`ticket key rotation across two nodes${hasRedisServer ? "" : ` (skipped: ${skipReason})`}`, () => {
  let redis: TestRedis
  const dir = mkdtempSync(join(tmpdir(), "tidings-rotation-"))
  const oldKey = join(dir, "ticket-old.bin")
  const newKey = join(dir, "ticket-new.bin")
  const running: Array<Gateway> = []

  beforeAll(async () => {
    redis = await startRedis()
    writeFileSync(oldKey, randomBytes(32))
    writeFileSync(newKey, randomBytes(32))
  })
  afterAll(async () => {
    for (const gateway of running) await gateway.close()
    await redis?.stop()
  })

  /** A node of the gateway in one rotation state; nodes share Redis and the dev issuer's trust only through tickets. */
  const node = async (name: string, keys: Record<string, string>) => {
    const gateway = await startGateway({ TIDINGS_REDIS_URL: redis.url, TIDINGS_NODE_ID: name, ...keys })
    running.push(gateway)
    return gateway
  }

  /** A ticket from `issuer` opens a session on `server`: the code the socket ends with, or "open". */
  const crossOpen = async (issuer: Gateway, server: Gateway, ref: string) => {
    const connected = await server.connect({ ticket: await issuer.ticket("patient", ref) })
    if (connected.kind !== "open") throw new Error(JSON.stringify(connected))
    connected.client.send({ type: "ping", id: "p" })
    const outcome = await Promise.race([
      connected.client.next((f) => f.type === "pong").then(() => "open" as const),
      connected.client.closed.then((c) => c.code)
    ])
    connected.ws.close()
    return outcome
  }

  const SIGNS_OLD = { TIDINGS_TICKET_KEY_FILE: oldKey }
  const ACCEPTS_NEW = { TIDINGS_TICKET_KEY_FILE: oldKey, TIDINGS_TICKET_NEXT_KEY_FILE: newKey }
  const SIGNS_NEW = { TIDINGS_TICKET_KEY_FILE: newKey, TIDINGS_TICKET_PREVIOUS_KEY_FILES: oldKey }

  it("phase 1 → 2: a node that signs with the new key and one that only accepts it take each other's tickets", async () => {
    const a = await node("rot-a1", SIGNS_NEW)
    const b = await node("rot-b1", ACCEPTS_NEW)
    expect(await crossOpen(a, b, "pt_rotation_001")).toBe("open")
    expect(await crossOpen(b, a, "pt_rotation_002")).toBe("open")
  })

  it("phase 0 → 1: a node that accepts the new key and one not yet told of it take each other's tickets", async () => {
    const a = await node("rot-a2", ACCEPTS_NEW)
    const b = await node("rot-b2", SIGNS_OLD)
    expect(await crossOpen(a, b, "pt_rotation_003")).toBe("open")
    expect(await crossOpen(b, a, "pt_rotation_004")).toBe("open")
  })

  it("a one-phase roll fails users: a node not yet updated refuses the new key's tickets with 4401", async () => {
    const a = await node("rot-a3", SIGNS_NEW)
    const b = await node("rot-b3", SIGNS_OLD)
    expect(await crossOpen(a, b, "pt_rotation_005")).toBe(4401)
    expect(await crossOpen(b, a, "pt_rotation_006")).toBe("open")
  })
})
