// The control channel every node listens to: revocations (by subject pseudonym), changed care
// relationships, and each node's own heartbeat. It has a connection of its own, subscribed
// once and never unsubscribed: on a connection shared with sharded pub/sub, releasing the last
// SSUBSCRIBE took ioredis out of subscriber mode and the control channel was silently lost.
// The heartbeat proves the node still hears it (`/readyz`, `tidings_control_channel_up`).
import { Context, Effect, Layer, Metric, type Scope } from "effect"
import type { Redis } from "ioredis"
import { randomBytes } from "node:crypto"
import { Unavailable } from "../../domain/Errors.ts"
import { attempt, connect, RedisClient, RedisTargetRef, release } from "./Client.ts"
import { Keys } from "./Keys.ts"

/** Transient pub/sub traffic inside the deployment's Redis: subjects and channels by pseudonym only. */
export type ControlMessage =
  | { readonly t: "revoke"; readonly s: string }
  | { readonly t: "care"; readonly c: string; readonly p: string }
  | { readonly t: "beat"; readonly n: string; readonly k: number }

export const decode = (text: string): ControlMessage | undefined => {
  try {
    const message = JSON.parse(text) as Partial<ControlMessage>
    if (message.t === "revoke" && typeof message.s === "string") return message as ControlMessage
    if (message.t === "care" && typeof message.c === "string" && typeof message.p === "string") return message as ControlMessage
    if (message.t === "beat" && typeof message.n === "string" && typeof message.k === "number") return message as ControlMessage
    return undefined
  } catch {
    return undefined
  }
}

export const controlUp = Metric.gauge("tidings_control_channel_up", {
  description: "1 while this node hears its own heartbeat on the control channel (revocations, care changes), else 0"
})

export const heartbeatsMissed = Metric.counter("tidings_control_heartbeats_missed_total", {
  description: "Heartbeats this node published on the control channel and did not hear back before the next one"
})

export class ControlChannel extends Context.Service<ControlChannel, {
  /** Calls `listener` for every revocation and care change heard, while the scope is open. */
  readonly listen: (listener: (message: ControlMessage) => void) => Effect.Effect<void, never, Scope.Scope>
  readonly publish: (message: ControlMessage, service: Unavailable["service"]) => Effect.Effect<void, Unavailable>
  /** Calls `listener` each time the control connection is back after a drop: messages were missed. */
  readonly onReconnect: (listener: () => void) => Effect.Effect<void, never, Scope.Scope>
  /** Whether this node heard its last heartbeat before sending the next one. */
  readonly up: Effect.Effect<boolean>
}>()("tidings/ControlChannel") {}

/** How often a node publishes its heartbeat; a beat not heard by the next one is missed. */
export const HEARTBEAT_MS = 2_000

export const layerWith = ({ heartbeatMs }: { readonly heartbeatMs: number }) => Layer.effect(
  ControlChannel,
  Effect.gen(function*() {
    const redis = (yield* RedisClient).commands
    const connection: Redis = yield* Effect.acquireRelease(connect(yield* RedisTargetRef, { autoResubscribe: false }), release)
    const listeners = new Set<(message: ControlMessage) => void>()
    const reconnectListeners = new Set<() => void>()
    // A nonce, not the configured node id: two nodes misconfigured with one id (or two layers
    // in one test process) must not hear each other's beats as their own.
    const self = randomBytes(8).toString("hex")
    let sent = 0
    let heard = 0
    let published = true
    let up = true

    connection.on("message", (name: string, text: string) => {
      if (name !== Keys.control) return
      const message = decode(text)
      if (message === undefined) return
      if (message.t === "beat") {
        if (message.n === self && message.k > heard) {
          heard = message.k
          up = true
        }
        return
      }
      for (const listener of listeners) {
        try {
          listener(message)
        } catch {
          // One faulty listener must not starve the others.
        }
      }
    })
    // "ready" after a reconnect (the first one was the initial connect, before this listener
    // existed). The channel is subscribed again here, not by ioredis (autoResubscribe is off):
    // ioredis forgets a channel whose SUBSCRIBE was refused, and leaves the refusal unhandled.
    // On a cluster its subscriber re-subscribes as well; a second SUBSCRIBE is harmless.
    connection.on("ready", () => {
      connection.subscribe(Keys.control).catch(() => undefined)
      for (const listener of reconnectListeners) listener()
    })
    yield* attempt("sessions")(() => connection.subscribe(Keys.control)).pipe(
      // Without the control channel no revocation would reach this node: a start-up failure.
      Effect.orDie
    )

    const publish = (message: ControlMessage, service: Unavailable["service"]) =>
      attempt(service)(() => redis.publish(Keys.control, JSON.stringify(message))).pipe(Effect.asVoid)

    // Each tick: was the previous beat heard? Then the next one. A beat that went out but was
    // not heard, on a connection that believes itself ready, means it is deaf (a half-open
    // socket, a lost subscription): it is dropped and reconnected, which re-subscribes and tells
    // the listeners to re-check. A beat that could not be published says Redis is away.
    const beat = Effect.gen(function*() {
      if (heard < sent) {
        up = false
        yield* Metric.update(heartbeatsMissed, 1)
        if (published && connection.status === "ready") {
          connection.disconnect(true)
          // No beat into the reconnect itself (it would be lost, and judged deaf again next
          // tick): the next tick sends one.
          sent = heard
          published = false
          yield* Metric.update(controlUp, 0)
          return
        }
      }
      yield* Metric.update(controlUp, up ? 1 : 0)
      sent += 1
      published = yield* publish({ t: "beat", n: self, k: sent }, "sessions").pipe(
        Effect.as(true),
        Effect.orElseSucceed(() => false)
      )
    })
    yield* Metric.update(controlUp, 1)
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(beat, Effect.sleep(heartbeatMs))))

    return ControlChannel.of({
      listen: (listener) =>
        Effect.acquireRelease(
          Effect.sync(() => listeners.add(listener)),
          () => Effect.sync(() => void listeners.delete(listener))
        ).pipe(Effect.asVoid),
      publish,
      onReconnect: (listener) =>
        Effect.acquireRelease(
          Effect.sync(() => reconnectListeners.add(listener)),
          () => Effect.sync(() => void reconnectListeners.delete(listener))
        ).pipe(Effect.asVoid),
      up: Effect.sync(() => up)
    })
  })
)

export const layer = layerWith({ heartbeatMs: HEARTBEAT_MS })
