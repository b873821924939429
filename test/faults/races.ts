// The two races of the fault-injection suite, each a step of its own: a WebSocket handshake
// racing a revocation of its subject, and a subscribe racing the care end it depends on.
// Whatever wins, access is gone within BOUND_MS of the 202/204.
import { until } from "../support/wait.ts"
import { BOUND_MS } from "./bounds.ts"
import { connect } from "./client.ts"
import type { NodeName } from "./cluster.ts"
import { Violation } from "./invariants.ts"
import type { Role, Session, World } from "./world.ts"

/** A ticket issued before the revocation, used while it is in flight: the socket must not stay open past BOUND_MS. */
export const openDuringRevocation = async (world: World, role: Role, who: number, node: NodeName, via: NodeName): Promise<string> => {
  const ticket = await world.ticket(role, who, node)
  const started = Date.now()
  const opening = connect(world.cluster.node[node].port, world.cluster.ca, ticket).catch(() => undefined)
  const revoked = await world.revoke(via, role, who)
  const client = await opening
  if (client === undefined) return `${revoked}; the racing handshake failed`
  const session = world.adopt(role, who, node, client, started)
  const ack = world.revocations.get(`${role}:${session.ref}`)!.at(-1)!
  await until(async () => client.closed() !== undefined, ack + BOUND_MS - Date.now(), "the racing session closes").catch(() => {
    throw new Violation("no revoked session open past BOUND_MS", `session ${world.describe(session)} (its handshake raced the revocation)`,
      `still open ${Date.now() - ack} ms after the revocation was acknowledged`)
  })
  return `${revoked}; racing ${session.name} closed ${client.closed()!.code}`
}

/** Whichever answer the subscribe gets, the clinician's subscription is gone within BOUND_MS of the end (replay() refuses later events). */
export const subscribeDuringCareEnd = async (world: World, s: Session, p: number, node: NodeName): Promise<string> => {
  const channel = world.channel("patient", p)
  const [answer] = await Promise.all([world.subscribe(s, channel, true), world.end(node, s.who, p)])
  const ack = world.careEnds.get(`${s.who}|${p}`)!.at(-1)!
  const held = () => s.client.closed() === undefined && world.live(s).has(channel)
  await until(async () => !held(), Math.max(0, ack + BOUND_MS - Date.now()), "racing subscription removed").catch(() => {
    throw new Violation("a care end removes the subscription within BOUND_MS", `session ${world.describe(s)}, channel ${channel}`,
      `a subscribe racing the end was answered ${answer} and still holds ${Date.now() - ack} ms after the end was acknowledged`)
  })
  return `${answer}; ${s.client.closed() === undefined ? "not held" : "closed"} after the end`
}
