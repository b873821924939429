// Two gateway nodes on one real redis-server of their own (started for the test file), sharing
// a ticket key as every node of one gateway does; and the round trip e2e specs use to know a
// session is open and everything it was sent before has been handled.
import { afterAll, beforeAll } from "vitest"
import { type Client, type Gateway, makeTicketKey, startGateway } from "./gateway.ts"
import { startRedis, type TestRedis } from "./redis.ts"

/** A ping answered: the session is open, and every frame sent before it was handled. */
export const roundTrip = async (client: Client, id: string) => {
  client.send({ type: "ping", id })
  await client.next((f) => f.type === "pong" && f.id === id)
}

export interface TwoNodes {
  readonly redis: TestRedis
  /** node-a and node-b, with `env` on top of their Redis URL and node id. */
  readonly a: Gateway
  readonly b: Gateway
}

/** Starts the nodes before the file's tests and stops them after; read them inside tests. */
export const useTwoNodes = (env: Record<string, string> = {}): TwoNodes => {
  const nodes = {} as { redis: TestRedis; a: Gateway; b: Gateway }
  beforeAll(async () => {
    nodes.redis = await startRedis()
    const ticketKeyPem = makeTicketKey()
    const shared = { TIDINGS_REDIS_URL: nodes.redis.url, ...env }
    nodes.a = await startGateway({ ...shared, TIDINGS_NODE_ID: "node-a" }, { ticketKeyPem })
    nodes.b = await startGateway({ ...shared, TIDINGS_NODE_ID: "node-b" }, { ticketKeyPem })
  }, 30_000)
  afterAll(async () => {
    await nodes.a?.close()
    await nodes.b?.close()
    await nodes.redis?.stop()
  })
  return nodes
}
