// The commands fast-check draws for the fault-injection suite: client actions (open, subscribe,
// unsubscribe, close), service and admin actions (publish, revoke, care grant and end) and
// faults (pub/sub kill, Redis restart, node restart, kill -9). The model says what can run next.
import fc from "fast-check"
import type { NodeName } from "./cluster.ts"
import { crashAfterAcks, crashNode, killPubsub, killPubsubMidPublish, restartNode, restartRedis } from "./faults.ts"
import * as Races from "./races.ts"
import { type Role, WHO, type World } from "./world.ts"

/** What the next command can be drawn from: the run's sessions and acknowledged care. */
export interface Model {
  sessions: Array<{
    readonly role: Role
    readonly who: number
    /** Its own channel, and the channels it holds now. */
    readonly own: string
    readonly open: boolean
    readonly held: ReadonlyArray<string>
    readonly denials: number
  }>
  /** The run's patient channels, P0 and P1. */
  patients: ReadonlyArray<string>
  care: ReadonlySet<string>
}

/** At most this many sessions open at once; at most this many denied subscribes each (the 11th closes 4403). */
const MAX_OPEN = 6
const MAX_DENIALS = 5

export const initialModel = (world: World): Model => ({
  sessions: [],
  patients: WHO.map((p) => world.channel("patient", p)),
  care: new Set()
})

/** After each command the model takes what the run observed (which sessions are open, what they hold). */
const sync = (model: Model, world: World) => {
  model.sessions = world.sessions.map((s) => ({
    role: s.role,
    who: s.who,
    own: world.channel(s.role, s.who),
    open: s.client.closed() === undefined,
    held: [...world.live(s).keys()],
    denials: s.client.received.filter((r) => r.frame.type === "error" && r.frame.code === "forbidden" && r.frame.id !== undefined).length
  }))
  model.care = new Set(world.care)
}

const openIndexes = (model: Model) => model.sessions.flatMap((s, i) => (s.open ? [i] : []))

interface Spec {
  readonly check?: (model: Readonly<Model>) => boolean
  readonly describe: (model: Model, world: World) => string
  readonly act: (model: Model, world: World) => Promise<string | void>
}

/** A command: `name` is what fast-check prints; the run's step log says what it resolved to. */
const command = (name: string, spec: Spec): fc.AsyncCommand<Model, World> => ({
  check: spec.check ?? (() => true),
  run: async (model, world) => {
    await world.step(spec.describe(model, world), () => spec.act(model, world))
    sync(model, world)
  },
  toString: () => name
})

const letter = (role: Role) => (role === "patient" ? "P" : "C")

/** Opens a session; `subscribe`: and subscribes it to its own channel in the same step. */
const open = (role: Role, who: number, node: NodeName, subscribe: boolean) =>
  command(`Open(${role},${who},${node}${subscribe ? ",subscribe" : ""})`, {
    check: (model) => openIndexes(model).length < MAX_OPEN,
    describe: () => `open a ${role} ${letter(role)}${who} session on node ${node}${subscribe ? " and subscribe it to its own channel" : ""}`,
    act: async (_, world) => {
      const name = await world.openSession(role, who, node)
      if (!subscribe) return name
      return `${name}, ${await world.subscribe(world.sessions.at(-1)!, world.channel(role, who))}`
    }
  })

/** Target 0 is the session's own channel; 1 and 2 are patient P0 and P1 (for a clinician). */
const subscribe = (pick: number, target: number) => {
  const resolve = (model: Readonly<Model>) => {
    const open = openIndexes(model)
    if (open.length === 0) return undefined
    const index = open[pick % open.length]!
    const s = model.sessions[index]!
    const patient = s.role === "clinician" && target > 0 ? target - 1 : undefined
    const channel = patient === undefined ? s.own : model.patients[patient]!
    const denied = patient !== undefined && !model.care.has(`${s.who}|${patient}`)
    return { index, s, channel, denied }
  }
  return command(`Subscribe(#${pick},${target})`, {
    check: (model) => {
      const r = resolve(model)
      return r !== undefined && !r.s.held.includes(r.channel) && (!r.denied || r.s.denials < MAX_DENIALS)
    },
    describe: (model, world) => `${world.describe(world.sessions[resolve(model)!.index]!)} subscribes to ${resolve(model)!.channel}`,
    act: (model, world) => world.subscribe(world.sessions[resolve(model)!.index]!, resolve(model)!.channel)
  })
}

const unsubscribe = (pick: number, which: number) => {
  const resolve = (model: Readonly<Model>) => {
    const holding = openIndexes(model).filter((i) => model.sessions[i]!.held.length > 0)
    if (holding.length === 0) return undefined
    const index = holding[pick % holding.length]!
    const held = model.sessions[index]!.held
    return { index, channel: held[which % held.length]! }
  }
  return command(`Unsubscribe(#${pick},${which})`, {
    check: (model) => resolve(model) !== undefined,
    describe: (model, world) => `${world.describe(world.sessions[resolve(model)!.index]!)} unsubscribes from ${resolve(model)!.channel}`,
    act: (model, world) => world.unsubscribe(world.sessions[resolve(model)!.index]!, resolve(model)!.channel)
  })
}

const close = (pick: number) => {
  const index = (model: Readonly<Model>) => {
    const open = openIndexes(model)
    return open.length === 0 ? undefined : open[pick % open.length]!
  }
  return command(`Close(#${pick})`, {
    check: (model) => index(model) !== undefined,
    describe: (model, world) => `${world.describe(world.sessions[index(model)!]!)} closes`,
    act: (model, world) => world.sessions[index(model)!]!.client.close()
  })
}

/** Publishes `count` events to a channel some open session holds (most should reach someone), else to any of the run's. */
const publishHeld = (node: NodeName, pick: number, count: number) => {
  const channel = (model: Readonly<Model>, world: World) => {
    const held = [...new Set(model.sessions.flatMap((s) => (s.open ? s.held : [])))].sort()
    return held.length > 0 ? held[pick % held.length]! : world.channel(pick % 4 < 2 ? "patient" : "clinician", pick % 2)
  }
  return command(`PublishHeld(${node},#${pick},${count})`, {
    describe: (model, world) => `publish ${count} to ${channel(model, world)} through node ${node}`,
    act: async (model, world) => {
      const seqs: Array<string> = []
      for (let i = 0; i < count; i++) seqs.push(await world.publish(node, channel(model, world)))
      return seqs.join(", ")
    }
  })
}

const revoke = (node: NodeName, role: Role, who: number) =>
  command(`Revoke(${node},${role},${who})`, {
    describe: () => `revoke ${role} ${letter(role)}${who} through node ${node}`,
    act: (_, world) => world.revoke(node, role, who)
  })

/** Revokes the subject of an open session (most revocations should concern someone). */
const revokeOpen = (node: NodeName, pick: number) => {
  const target = (model: Readonly<Model>) => {
    const open = openIndexes(model)
    return open.length === 0 ? undefined : model.sessions[open[pick % open.length]!]!
  }
  return command(`RevokeOpen(${node},#${pick})`, {
    check: (model) => target(model) !== undefined,
    describe: (model) => `revoke ${target(model)!.role} ${letter(target(model)!.role)}${target(model)!.who} through node ${node}`,
    act: (model, world) => world.revoke(node, target(model)!.role, target(model)!.who)
  })
}

const care = (grant: boolean, node: NodeName, c: number, p: number) =>
  command(`Care(${grant ? "grant" : "end"},${node},${c},${p})`, {
    describe: () => `${grant ? "grant" : "end"} care C${c} → P${p} through node ${node}`,
    act: (_, world) => (grant ? world.grant(node, c, p) : world.end(node, c, p))
  })

/** Grants an open clinician session's clinician care of patient `p`, then subscribes it to that patient's channel. */
const grantAndSubscribe = (node: NodeName, pick: number, p: number) => {
  const index = (model: Readonly<Model>) => {
    const clinicians = openIndexes(model).filter((i) => model.sessions[i]!.role === "clinician" && !model.sessions[i]!.held.includes(model.patients[p]!))
    return clinicians.length === 0 ? undefined : clinicians[pick % clinicians.length]!
  }
  return command(`GrantAndSubscribe(${node},#${pick},${p})`, {
    check: (model) => index(model) !== undefined,
    describe: (model, world) => `grant care C${model.sessions[index(model)!]!.who} → P${p} through node ${node}, then ${world.sessions[index(model)!]!.name} subscribes to ${model.patients[p]}`,
    act: async (model, world) => {
      const session = world.sessions[index(model)!]!
      await world.grant(node, session.who, p)
      return world.subscribe(session, world.channel("patient", p))
    }
  })
}

/** A clinician session under care of patient `p` subscribes to that patient while the care ends. */
const subscribeDuringCareEnd = (node: NodeName, pick: number, p: number) => {
  const index = (model: Readonly<Model>) => {
    const ready = openIndexes(model).filter((i) => {
      const s = model.sessions[i]!
      return s.role === "clinician" && model.care.has(`${s.who}|${p}`) && !s.held.includes(model.patients[p]!)
    })
    return ready.length === 0 ? undefined : ready[pick % ready.length]!
  }
  return command(`SubscribeDuringCareEnd(${node},#${pick},${p})`, {
    check: (model) => index(model) !== undefined,
    describe: (model, world) =>
      `${world.describe(world.sessions[index(model)!]!)} subscribes to ${model.patients[p]} while care C${model.sessions[index(model)!]!.who} → P${p} ends through node ${node}`,
    act: (model, world) => Races.subscribeDuringCareEnd(world, world.sessions[index(model)!]!, p, node)
  })
}

/** Ends a care relationship a clinician session is subscribed under (most ends should concern someone). */
const endHeld = (node: NodeName, pick: number) => {
  const target = (model: Readonly<Model>) => {
    const held = model.sessions.flatMap((s) =>
      s.open && s.role === "clinician" ? s.held.flatMap((c) => (model.patients.includes(c) ? [{ c: s.who, p: model.patients.indexOf(c) }] : [])) : []
    )
    return held.length === 0 ? undefined : held[pick % held.length]!
  }
  return command(`EndHeld(${node},#${pick})`, {
    check: (model) => target(model) !== undefined,
    describe: (model) => `end care C${target(model)!.c} → P${target(model)!.p} through node ${node}`,
    act: (model, world) => world.end(node, target(model)!.c, target(model)!.p)
  })
}

/** Opens a session whose handshake races a revocation of its subject (through either node). */
const openDuringRevocation = (role: Role, who: number, node: NodeName, via: NodeName) =>
  command(`OpenDuringRevocation(${role},${who},${node},${via})`, {
    check: (model) => openIndexes(model).length < MAX_OPEN,
    describe: () => `open a ${role} ${letter(role)}${who} session on node ${node} while revoking it through node ${via}`,
    act: (_, world) => Races.openDuringRevocation(world, role, who, node, via)
  })

type FaultKind = "pubsub" | "pubsub-publish" | "redis-term" | "redis-kill" | "node-term" | "node-kill" | "node-kill-after-acks"

const fault = (kind: FaultKind, node: NodeName) =>
  command(`Fault(${kind},${node})`, {
    describe: () =>
      ({
        "pubsub": "CLIENT KILL TYPE pubsub",
        "pubsub-publish": `CLIENT KILL TYPE pubsub and at once publish to every channel through node ${node}`,
        "redis-term": "restart Redis (SIGTERM)",
        "redis-kill": "restart Redis (SIGKILL)",
        "node-term": `restart node ${node} (SIGTERM)`,
        "node-kill": `kill -9 node ${node} and restart it`,
        "node-kill-after-acks": `a burst of publishes, grant C1 → P1 and revoke C0 through node ${node}, then at once kill -9 it and restart it`
      })[kind],
    act: (_, world): Promise<string | void> =>
      ({
        "pubsub": () => killPubsub(world),
        "pubsub-publish": () => killPubsubMidPublish(world, node),
        "redis-term": () => restartRedis(world, "SIGTERM"),
        "redis-kill": () => restartRedis(world, "SIGKILL"),
        "node-term": () => restartNode(world, node),
        "node-kill": () => crashNode(world, node),
        "node-kill-after-acks": () => crashAfterAcks(world, node)
      })[kind]()
  })

const node = fc.constantFrom<NodeName>("a", "b")
const role = fc.constantFrom<Role>("patient", "clinician")
const who = fc.constantFrom(...WHO)
const pick = fc.nat(11)

const faultKind = fc.constantFrom<FaultKind>("pubsub", "pubsub-publish", "redis-term", "redis-kill", "node-term", "node-kill", "node-kill-after-acks")

/** Weights (repeated entries): sessions and subscriptions are needed before most faults matter. */
const weighted = <A>(weight: number, arbitrary: fc.Arbitrary<A>) => Array.from({ length: weight }, () => arbitrary)

export const commandArbitraries: Array<fc.Arbitrary<fc.AsyncCommand<Model, World>>> = [
  ...weighted(3, fc.tuple(role, who, node, fc.constantFrom(true, true, false)).map(([r, w, n, s]) => open(r, w, n, s))),
  ...weighted(4, fc.tuple(pick, fc.nat(2)).map(([p, t]) => subscribe(p, t))),
  ...weighted(2, fc.tuple(pick, pick).map(([p, w]) => unsubscribe(p, w))),
  ...weighted(1, pick.map((p) => close(p))),
  ...weighted(10, fc.tuple(node, pick, fc.integer({ min: 1, max: 3 })).map(([n, p, c]) => publishHeld(n, p, c))),
  ...weighted(1, fc.tuple(node, role, who).map(([n, r, w]) => revoke(n, r, w))),
  ...weighted(1, fc.tuple(node, pick).map(([n, p]) => revokeOpen(n, p))),
  ...weighted(1, fc.tuple(role, who, node, node).map(([r, w, n, v]) => openDuringRevocation(r, w, n, v))),
  ...weighted(2, fc.tuple(node, who, who).map(([n, c, p]) => care(true, n, c, p))),
  ...weighted(1, fc.tuple(node, who, who).map(([n, c, p]) => care(false, n, c, p))),
  ...weighted(2, fc.tuple(node, pick, who).map(([n, s, p]) => grantAndSubscribe(n, s, p))),
  ...weighted(2, fc.tuple(node, pick).map(([n, p]) => endHeld(n, p))),
  ...weighted(2, fc.tuple(node, pick, who).map(([n, s, p]) => subscribeDuringCareEnd(n, s, p))),
  ...weighted(2, fc.tuple(faultKind, node).map(([k, n]) => fault(k, n)))
]
