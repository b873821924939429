// The faults the suite injects into a running cluster (pub/sub connections killed, Redis and
// node restarts, kill -9) and the audit checks that follow a crash: every acknowledged action
// has its record in the node's files, and the trail verifies.
import { readdirSync } from "node:fs"
import { join } from "node:path"
import { main as cli } from "../../src/cli.ts"
import { until } from "../support/wait.ts"
import { BOUND_MS } from "./bounds.ts"
import type { NodeName } from "./cluster.ts"
import { auditCounts, missingAudit, Violation } from "./invariants.ts"
import { WHO, type World } from "./world.ts"

/** `CLIENT KILL TYPE pubsub`: every node's subscriber connection drops and reconnects on its own. */
export const killPubsub = async (world: World) => `${await world.cluster.admin.call("CLIENT", "KILL", "TYPE", "pubsub")} killed`

/** The same, with a publish on every channel while the subscribers reconnect: each must come from the backfill. */
export const killPubsubMidPublish = async (world: World, node: NodeName) => {
  const killed = await killPubsub(world)
  await Promise.all(WHO.flatMap((who) => [world.publish(node, world.channel("patient", who)), world.publish(node, world.channel("clinician", who))]))
  return `${killed}, then 4 publishes through node ${node}`
}

/** Stops Redis (SIGTERM: it writes its state; SIGKILL: the append-only file already has every write) and starts it again. */
export const restartRedis = async (world: World, signal: "SIGTERM" | "SIGKILL") => {
  await world.cluster.redisStop(signal)
  await world.cluster.redisStart()
  await world.nodesReady()
}

const sessionsOn = (world: World, node: NodeName) => world.open().filter((s) => s.node === node)

/** SIGTERM and start again: its sessions close 1001. */
export const restartNode = async (world: World, node: NodeName) => {
  const sessions = sessionsOn(world, node)
  await world.cluster.node[node].stop("SIGTERM")
  await Promise.all(sessions.map((s) => s.client.whenClosed))
  await world.cluster.node[node].start()
  await world.nodesReady()
  return sessions.map((s) => `${s.name} closed ${s.client.closed()!.code}`).join(", ")
}

/** kill -9: what the node acknowledged must already be on disk, before and after its restart. */
export const crashNode = async (world: World, node: NodeName) => {
  const sessions = sessionsOn(world, node)
  await world.cluster.node[node].stop("SIGKILL")
  await Promise.all(sessions.map((s) => s.client.whenClosed))
  auditHolds(world, node, "after kill -9")
  await verifyTrail(world, node)
  await world.cluster.node[node].start()
  auditHolds(world, node, "after kill -9 and restart")
  await world.nodesReady()
}

const files = (world: World, node: NodeName) => {
  const dir = world.cluster.node[node].auditDir
  return readdirSync(dir).filter((name) => name.startsWith(`audit-${node}-`) && name.endsWith(".jsonl")).sort().map((name) => join(dir, name))
}

/** The node's files hold at least one record per acknowledged action (per event, subject and channel). */
export const auditHolds = (world: World, node: NodeName, when: string) => {
  const missing = missingAudit(world.ledger[node], auditCounts(world.cluster.node[node].auditDir, node))
  if (missing.length > 0) {
    throw new Violation("every acknowledged action has its audit record", `node ${node} ${when}`,
      missing.map((m) => `${world.auditNames.get(m.key) ?? m.key}: ${m.found} records for ${m.acked} acknowledged`).join("; "))
  }
}

/** At the end of a run nothing crashed in the meantime: the records are written within BOUND_MS. */
export const auditWritten = async (world: World, node: NodeName) => {
  await until(async () => missingAudit(world.ledger[node], auditCounts(world.cluster.node[node].auditDir, node)).length === 0,
    BOUND_MS, "audit written").catch(() => auditHolds(world, node, `${BOUND_MS} ms after the run`))
}

/**
 * kill -9 at once after a burst of acknowledged actions through the node (publishes on every
 * channel, a care grant, a revocation, in parallel; no step in between): each 202/204 promised
 * a record that must survive the crash.
 */
export const crashAfterAcks = async (world: World, node: NodeName) => {
  const chain = async (channel: string) => {
    for (let i = 0; i < BURST_PER_CHANNEL; i++) await world.publish(node, channel)
  }
  await Promise.all([
    ...WHO.flatMap((who) => [chain(world.channel("patient", who)), chain(world.channel("clinician", who))]),
    world.grant(node, 1, 1),
    world.revoke(node, "clinician", 0)
  ])
  await crashNode(world, node)
  return `${4 * BURST_PER_CHANNEL} publishes, a grant and a revocation acknowledged before the kill`
}

/** Publishes per channel in the burst before a crash (each channel's in order, channels in parallel). */
const BURST_PER_CHANNEL = 3

/** `tidings audit verify --open` on a stopped node's files: the chain is whole (a crash leaves it unsealed). */
export const verifyTrail = async (world: World, node: NodeName) => {
  const code = await cli(["audit", "verify", "--open", "--key", world.cluster.auditKeyFile, ...files(world, node)])
  if (code !== 0) throw new Violation("the audit trail verifies after kill -9", `node ${node}`, `tidings audit verify exited ${code}`)
}
