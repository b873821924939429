// One WebSocket session, from ticket to close: consume the ticket, register the session,
// then answer client messages until the socket ends, the session expires or is revoked.
// The session fails with the error that ended it; the edge maps that to a close code.
import { Cause, Clock, Deferred, Effect, Exit, Fiber, Metric, Result, Scope } from "effect"
import { type Channel, parse, print } from "../domain/Channel.ts"
import { closeFor, frameCodeFor } from "../domain/Close.ts"
import type { Event } from "../domain/Event.ts"
import {
  ClosedNormally, type FrameRejected, type GatewayError, InternalError, type MessageTooBig, ShuttingDown, ProtocolViolation, RateLimited, RepeatedDenials, SessionExpired,
  type SessionRevoked, SubscriptionDenied, type TicketRejected, type TooSlow, type Unavailable
} from "../domain/Errors.ts"
import * as Limits from "../domain/Limits.ts"
import * as TokenBucket from "../domain/TokenBucket.ts"
import * as Policy from "../domain/Policy.ts"
import { subjectOf, type User } from "../domain/Principal.ts"
import type { Jti } from "../domain/Ref.ts"
import * as Wire from "../domain/Wire.ts"
import { AuditLog } from "../services/AuditLog.ts"
import { CareRelationships } from "../services/CareRelationships.ts"
import { EventBus } from "../services/EventBus.ts"
import { RateLimiter } from "../services/RateLimiter.ts"
import { type LiveSession, Sessions } from "../services/Sessions.ts"
import { Settings } from "../services/Settings.ts"
import { Hub, type Pushed, type Subscriber } from "./Hub.ts"
import { admit, auditReady } from "./Admit.ts"
import * as Ids from "./Ids.ts"
import * as Metrics from "./Metrics.ts"
import * as Tickets from "./Tickets.ts"

/** A connection's way out. `offer` never waits; false means the client's window is full. */
export interface Outbox {
  readonly offer: (frame: string) => boolean
}

/** How the socket itself can end a session. */
export type TransportEnd = ClosedNormally | MessageTooBig | FrameRejected | TooSlow

/** How the gateway ends a session from outside its message loop. */
export type Interruption = SessionRevoked | SessionExpired

/** What a session needs from its socket; the edge builds it from `ws`. */
export interface Transport {
  readonly origin: string
  /** The client's network address, for per-address limits only (never logged or audited). */
  readonly peer: string
  readonly ticket: string | undefined
  /** The next text frame; fails once the socket has ended, or with what `end` was given. */
  readonly receive: Effect.Effect<string, TransportEnd | Interruption>
  /**
   * Ends the session: the pending or next `receive` fails with `reason` (the first reason
   * wins). One waiting point per session, so an idle session holds a single fiber.
   */
  readonly end: (reason: Interruption) => void
  readonly outbox: Outbox
  /** Called once the session is open (ticket consumed, registered): ends the handshake timing. */
  readonly opened?: () => void
}

/** A subscription that holds back live events until its `subscribed` answer is out. */
interface Subscription extends Subscriber {
  readonly scope: Scope.Closeable
  /** The timer that re-checks access when a care relationship's `until` comes. */
  expiry: Fiber.Fiber<void> | undefined
  /** Sends what was held back after `subscribed` (and any replay), then goes live. */
  readonly settle: (lastSeq: number, replay: ReadonlyArray<Event>) => Tally
  /** Holds events back while access is being checked again; `settle` releases them. */
  readonly pause: () => void
}

/** Deliveries made by `settle`, for the delivery counters (the hub counts its own). */
interface Tally {
  sent: number
  refused: number
}

const makeSubscription = (
  outbox: Outbox,
  scope: Scope.Closeable,
  onRefused: (event: Event) => void
): Subscription => {
  let held: Array<readonly [Event, string]> | undefined = []
  let seq = 0
  const forward = (event: Event, frame: string): Pushed => {
    // The bus may hand over an event the replay already sent: seq makes it idempotent.
    if (event.seq <= seq) return "none"
    seq = event.seq
    if (outbox.offer(frame)) return "sent"
    onRefused(event)
    return "refused"
  }
  const count = (tally: Tally, pushed: Pushed) => {
    if (pushed === "sent") tally.sent += 1
    else if (pushed === "refused") tally.refused += 1
  }
  return {
    scope,
    expiry: undefined,
    push: (event, frame) => {
      if (held === undefined) return forward(event, frame)
      held.push([event, frame])
      return "none"
    },
    pause: () => {
      held ??= []
    },
    settle: (lastSeq, replay) => {
      const tally: Tally = { sent: 0, refused: 0 }
      for (const event of replay) count(tally, forward(event, Wire.event(event)))
      seq = Math.max(seq, lastSeq)
      const pending = held ?? []
      held = undefined
      for (const [event, frame] of pending) count(tally, forward(event, frame))
      return tally
    }
  }
}

export type SessionEnd =
  | TransportEnd | TicketRejected | Unavailable | SessionRevoked | SessionExpired | ProtocolViolation | RepeatedDenials
  | RateLimited | import("../domain/Errors.ts").TooManySessions

/** How a session ended, as the error its close code is read from. */
export const endOf = (exit: Exit.Exit<unknown, GatewayError>): GatewayError => {
  if (Exit.isSuccess(exit)) return new ClosedNormally()
  const error = Cause.findErrorOption(exit.cause)
  if (error._tag === "Some") return error.value
  return Cause.hasInterruptsOnly(exit.cause) ? new ShuttingDown() : new InternalError()
}

/** Who the session turned out to be, once its ticket was consumed: for the closing record. */
interface Known {
  subject?: string
  jti?: string
}

/** Runs one session and audits how it ended, whether or not it ever got past the ticket. */
export const run = (transport: Transport) => {
  const known: Known = {}
  // Kept apart from `known`, which is spread into the audit record.
  const progress = { opened: false }
  return live(transport, known, progress).pipe(
    Effect.onExit((exit) => {
      const error = endOf(exit)
      const code = closeFor(error).code
      return Effect.andThen(
        Effect.andThen(Metrics.closed(code), progress.opened ? Effect.void : Metrics.connected("refused")),
        AuditLog.use((audit) =>
          audit.append({
            event: "ws.closed",
            ...known,
            origin: transport.origin,
            close: code,
            cause: error._tag
          })
        )
      )
    })
  )
}

// Untraced, here and in the other programs: a traced Effect.fn captures an Error (its call
// site) and a span per call, which a session holding a socket for hours would keep alive.
const live = Effect.fnUntraced(function*(transport: Transport, known: Known, progress: { opened: boolean }) {
  const settings = yield* Settings
  const audit = yield* AuditLog
  const limiter = yield* RateLimiter
  // A connect flood from one address is cut before its ticket is even looked at.
  yield* admit(`connect-ip:${transport.peer}`, settings.rates.connectsPerIp)
  yield* auditReady
  const claims = yield* Tickets.consume(transport.ticket, transport.origin)
  known.subject = claims.user.ref
  known.jti = claims.jti
  yield* admit(`connect:${claims.user.ref}`, settings.rates.connectsPerSubject, claims.user.ref)
  const bus = yield* EventBus
  const hub = yield* Hub
  const care = yield* CareRelationships
  const user = claims.user
  const subject = subjectOf(user)
  const outbox = transport.outbox
  // The rare side fibers (care expiry timers, re-checks) are forked on demand and interrupted
  // with the session: lighter than a FiberSet and its runtime kept by every idle session.
  const context = yield* Effect.context<never>()
  let forked: Set<Fiber.Fiber<void>> | undefined
  const runFork = (effect: Effect.Effect<void>): Fiber.Fiber<void> => {
    const fiber = Effect.runForkWith(context)(effect)
    ;(forked ??= new Set()).add(fiber)
    fiber.addObserver(() => forked?.delete(fiber))
    return fiber
  }
  yield* Effect.addFinalizer(() => (forked === undefined ? Effect.void : Fiber.interruptAll([...forked])))

  const opened = yield* Clock.currentTimeMillis
  const state = {
    deadline: Math.min(claims.sessionExpiresAt, opened + settings.sessionMaxS * 1000),
    lastActive: opened,
    malformed: 0,
    denied: 0,
    limited: 0,
    // Messages per connection are limited here, not in the shared RateLimiter: they need no
    // agreement between nodes, and a round trip per message would be the wrong price.
    messages: TokenBucket.full(settings.rates.messages, opened),
    jti: claims.jti as Jti,
    subscriptions: new Map<string, Subscription>()
  }

  // A refused frame means the socket is ending as too slow. Nothing waits on it here (the
  // publisher and the other subscribers carry on); it is audited once, as the session ends.
  let refused: Channel | undefined
  const onRefused = (event: Event) => {
    refused ??= event.channel
  }

  const drop = (key: string) => {
    const subscription = state.subscriptions.get(key)
    if (subscription === undefined) return Effect.void
    state.subscriptions.delete(key)
    subscription.expiry?.interruptUnsafe()
    return Effect.andThen(Metric.modify(Metrics.subscriptions, -1), Scope.close(subscription.scope, Exit.void))
  }

  /** Until when the session may see the channel (ms; Infinity: while it lives), or undefined. */
  const allowedUntil = Effect.fnUntraced(function*(channel: Channel) {
    const decision = Policy.canSubscribe(user, channel)
    switch (decision._tag) {
      case "Allow":
        return Number.POSITIVE_INFINITY
      case "Deny":
        return undefined
      case "IfCareRelationship":
        return yield* care.activeUntil(decision.clinician, decision.patient, yield* Clock.currentTimeMillis)
    }
  })

  /** Arms (or re-arms) the check that ends a subscription when its care relationship runs out. */
  const expireAt = (key: string, channel: Channel, until: number) => {
    const subscription = state.subscriptions.get(key)
    if (subscription === undefined) return
    subscription.expiry?.interruptUnsafe()
    subscription.expiry = Number.isFinite(until)
      ? runFork(Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sleep(Math.max(0, until - now))).pipe(
        Effect.andThen(Effect.suspend(() => {
          // The timer is done: re-arming from the check below must not interrupt it mid-check.
          subscription.expiry = undefined
          return reauthorize(channel)
        }))
      ))
      : undefined
  }

  // A held channel checked again. If the check itself fails (a backing service is down), the
  // subscription ends: access is never kept on an answer we could not get.
  const reauthorize = (channel: Channel): Effect.Effect<void> =>
    Effect.gen(function*() {
      const key = print(channel)
      const subscription = state.subscriptions.get(key)
      if (subscription === undefined) return
      subscription.pause()
      const until = yield* allowedUntil(channel).pipe(Effect.orElseSucceed(() => undefined))
      if (state.subscriptions.get(key) !== subscription) return
      if (until !== undefined) {
        const tally = subscription.settle(0, [])
        yield* Metrics.delivered(tally.sent, tally.refused)
        return expireAt(key, channel, until)
      }
      outbox.offer(Wire.error(undefined, "forbidden", channel))
      yield* drop(key)
      yield* audit.append({ event: "subscribe.denied", subject, channel, result: "refused", cause: "access_ended" })
    })

  const live: LiveSession = {
    id: Ids.sessionId(),
    subject,
    openedAt: opened,
    end: (reason) => transport.end(reason),
    reauthorize: (channel) => {
      const subscription = state.subscriptions.get(print(channel))
      if (subscription === undefined) return
      // Nothing more reaches the client until the check says it may still see the channel.
      subscription.pause()
      runFork(reauthorize(channel))
    },
    reauthorizeAll: () => {
      for (const key of state.subscriptions.keys()) {
        const channel = parse(key)
        if (channel !== undefined) live.reauthorize(channel)
      }
    }
  }
  yield* (yield* Sessions).register(live)
  yield* audit.append({ event: "ws.opened", jti: state.jti, subject, origin: transport.origin, result: "ok" })
  progress.opened = true
  transport.opened?.()
  yield* Metrics.connected("opened")
  yield* Effect.logDebug("session opened")
  yield* Effect.acquireRelease(Metric.modify(Metrics.connections, 1), () => Metric.modify(Metrics.connections, -1))
  yield* Effect.addFinalizer(() =>
    Effect.forEach([...state.subscriptions.keys()], drop, { discard: true })
  )

  const limited = Effect.fnUntraced(function*(error: RateLimited, id?: string) {
    state.limited += 1
    yield* Metrics.rateLimited(error.scope)
    if (state.limited === 1) yield* audit.append({ event: "rate.limited", subject, cause: error.scope, result: "refused" })
    if (state.limited > Limits.LIMITED_BEFORE_CLOSE) return yield* error
    outbox.offer(Wire.error(id, "rate_limited"))
  })

  const deny = Effect.fnUntraced(function*(id: string, channel: Channel) {
    state.denied += 1
    yield* audit.append({ event: "subscribe.denied", subject, channel, result: "refused" })
    if (state.denied > Limits.DENIALS_BEFORE_CLOSE) return yield* new RepeatedDenials()
    outbox.offer(Wire.error(id, frameCodeFor(new SubscriptionDenied())))
  })

  const subscribe = Effect.fnUntraced(function*(message: Wire.Subscribe) {
    const key = print(message.channel)
    const admitted = yield* limiter.consume(`subscribe:${subject}`, settings.rates.subscribes).pipe(Effect.result)
    if (Result.isFailure(admitted)) {
      if (admitted.failure._tag === "RateLimited") return yield* limited(admitted.failure, message.id)
      outbox.offer(Wire.error(message.id, "unavailable"))
      return
    }
    const until = yield* allowedUntil(message.channel).pipe(Effect.result)
    if (Result.isFailure(until)) {
      outbox.offer(Wire.error(message.id, "unavailable"))
      return
    }
    if (until.success === undefined) return yield* deny(message.id, message.channel)
    const existing = state.subscriptions.get(key)
    if (existing === undefined && state.subscriptions.size >= settings.maxSubscriptionsPerConnection) {
      outbox.offer(Wire.error(message.id, "rate_limited"))
      return
    }
    if (existing !== undefined) yield* drop(key)
    const scope = yield* Scope.make()
    const subscription = makeSubscription(outbox, scope, onRefused)
    state.subscriptions.set(key, subscription)
    yield* Metric.modify(Metrics.subscriptions, 1)
    const joined = yield* Effect.gen(function*() {
      yield* hub.join(message.channel, subscription).pipe(Scope.provide(scope))
      const lastSeq = yield* bus.lastSeq(message.channel)
      const replay = message.since === undefined || message.since > lastSeq
        ? undefined
        : yield* bus.since(message.channel, message.since)
      return { lastSeq, replay }
    }).pipe(Effect.result)
    if (Result.isFailure(joined)) {
      yield* drop(key)
      outbox.offer(Wire.error(message.id, frameCodeFor(joined.failure)))
      return
    }
    const { lastSeq, replay } = joined.success
    outbox.offer(Wire.subscribed(message.id, message.channel, lastSeq, replay !== undefined))
    const tally = subscription.settle(lastSeq, replay ?? [])
    yield* Metrics.delivered(tally.sent, tally.refused)
    expireAt(key, message.channel, until.success)
    yield* audit.append({ event: "subscribe.allowed", subject, channel: message.channel, result: "ok" })
  })

  const refresh = Effect.fnUntraced(function*(id: string, ticket: string) {
    const renewed = yield* Tickets.consume(ticket, transport.origin).pipe(Effect.result)
    if (Result.isFailure(renewed) || !sameUser(renewed.success.user, user)) {
      outbox.offer(Wire.error(id, "forbidden"))
      return
    }
    const now = yield* Clock.currentTimeMillis
    state.deadline = Math.min(renewed.success.sessionExpiresAt, now + settings.sessionMaxS * 1000)
    state.jti = renewed.success.jti
    outbox.offer(Wire.refreshed(id, new Date(state.deadline)))
  })

  const handle = Effect.fnUntraced(function*(text: string) {
    const now = yield* Clock.currentTimeMillis
    state.lastActive = now
    const taken = TokenBucket.take(state.messages, settings.rates.messages, now)
    state.messages = taken.bucket
    if (!taken.ok) return yield* limited(new RateLimited({ scope: "message", retryAfterMs: taken.retryAfterMs }))
    const decoded = Wire.decodeClientMessage(text)
    if (Result.isFailure(decoded)) {
      yield* Metrics.clientMessage("malformed")
      state.malformed += 1
      if (state.malformed > Limits.MALFORMED_BEFORE_CLOSE) return yield* new ProtocolViolation()
      outbox.offer(Wire.error(undefined, "bad_request"))
      return
    }
    const message = decoded.success
    yield* Metrics.clientMessage(message.type)
    switch (message.type) {
      case "subscribe":
        return yield* subscribe(message)
      case "unsubscribe":
        yield* drop(print(message.channel))
        outbox.offer(Wire.unsubscribed(message.id, message.channel))
        return
      case "refresh":
        return yield* refresh(message.id, message.ticket)
      case "ping":
        outbox.offer(Wire.pong(message.id))
        return
    }
  })

  // Ends the session at its deadline (token expiry or TIDINGS_SESSION_MAX_S) or when idle.
  runFork(Effect.gen(function*() {
    while (true) {
      const now = yield* Clock.currentTimeMillis
      const until = Math.min(state.deadline, state.lastActive + settings.idleTimeoutS * 1000)
      if (now >= until) return transport.end(new SessionExpired())
      yield* Effect.sleep(until - now)
    }
  }))

  return yield* Effect.forever(Effect.flatMap(transport.receive, handle)).pipe(
    Effect.tapError((error) =>
      error._tag === "TooSlow" && refused !== undefined
        ? Effect.andThen(
          Metric.update(Metrics.deliveriesFailed, 1),
          audit.append({ event: "delivery.failed", subject, channel: refused, result: "failed", cause: error._tag })
        )
        : Effect.void
    )
  )
})

const sameUser = (a: User, b: User): boolean => a._tag === b._tag && a.ref === b.ref
