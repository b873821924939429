// One WebSocket session, from ticket to close: consume the ticket, register the session,
// then answer client messages until the socket ends, the session expires or is revoked.
// The session fails with the error that ended it; the edge maps that to a close code.
// A node holds many idle sessions, so one session is one state object (`Live`) and the
// handlers below are module-level functions of it: nothing is allocated per session twice.
import { Cause, Clock, Context, Effect, Exit, Fiber, Metric, Result } from "effect"
import { type Channel, parse, print } from "../domain/Channel.ts"
import { closeFor, frameCodeFor } from "../domain/Close.ts"
import type { Event } from "../domain/Event.ts"
import {
  ClosedNormally, type ConnectionLost, type FrameRejected, type GatewayError, InternalError, type MessageTooBig, ShuttingDown, ProtocolViolation, RateLimited, RepeatedDenials, SessionExpired,
  SessionIdle, type SessionRevoked, SubscriptionDenied, type TicketRejected, type TooManySessions, type TooSlow, type Unavailable
} from "../domain/Errors.ts"
import * as Limits from "../domain/Limits.ts"
import type { Position } from "../domain/Position.ts"
import * as TokenBucket from "../domain/TokenBucket.ts"
import * as Policy from "../domain/Policy.ts"
import { type Subject, subjectOf, type User } from "../domain/Principal.ts"
import * as Wire from "../domain/Wire.ts"
import { AuditLog } from "../services/AuditLog.ts"
import { type ActiveGrant, CareRelationships } from "../services/CareRelationships.ts"
import { EventBus } from "../services/EventBus.ts"
import { RateLimiter } from "../services/RateLimiter.ts"
import { type LiveSession, Sessions } from "../services/Sessions.ts"
import { Settings } from "../services/Settings.ts"
import { Deadlines, type Watched } from "../services/Deadlines.ts"
import { Hub, type Pushed, type Subscriber } from "../services/Hub.ts"
import { admit, auditReady } from "./Admit.ts"
import * as Ids from "./Ids.ts"
import * as Metrics from "./Metrics.ts"
import * as Tickets from "./Tickets.ts"

/** A connection's way out. `offer` never waits; false means the client's window is full. */
export interface Outbox {
  readonly offer: (frame: string) => boolean
}

/** How the socket itself can end a session. */
export type TransportEnd = ClosedNormally | ConnectionLost | MessageTooBig | FrameRejected | TooSlow

/**
 * How the gateway ends a session from outside its message loop (Unavailable: the registry
 * could not re-check it for too long).
 */
export type Interruption = SessionRevoked | SessionExpired | SessionIdle | Unavailable

/** What a session needs from its socket; the edge builds it from `ws`. */
export interface Transport {
  readonly origin: string
  /** The client's network address, for per-address limits only (never logged or audited). */
  readonly peer: string
  readonly ticket: string | undefined
  /** A log correlation id (`c-…`) for the session's own log lines, if the edge gave one. */
  readonly id?: string
  /** The next text frame; fails once the socket has ended, or with what `end` was given. */
  readonly receive: Effect.Effect<string, TransportEnd | Interruption>
  /**
   * Ends the session: the pending or next `receive` fails with `reason` (the first reason
   * wins). One waiting point per session, so an idle session holds a single fiber.
   */
  readonly end: (reason: Interruption) => void
  readonly outbox: Outbox
  /** Called once the ticket has been checked, whatever the outcome: the transport may forget it. */
  readonly consumed?: () => void
  /** Called once the session is open (ticket consumed, registered): ends the handshake timing. */
  readonly opened?: () => void
}

export type SessionEnd =
  | TransportEnd | TicketRejected | Unavailable | SessionRevoked | SessionExpired | SessionIdle | ProtocolViolation | RepeatedDenials
  | RateLimited | TooManySessions

/** How a session ended, as the error its close code is read from. */
export const endOf = (exit: Exit.Exit<unknown, GatewayError>): GatewayError => {
  if (Exit.isSuccess(exit)) return new ClosedNormally()
  const error = Cause.findErrorOption(exit.cause)
  if (error._tag === "Some") return error.value
  return Cause.hasInterruptsOnly(exit.cause) ? new ShuttingDown() : new InternalError()
}

type Services = Settings | AuditLog | RateLimiter | EventBus | Hub | CareRelationships | Sessions | Deadlines

/** Deliveries made by `settle`, for the delivery counters (the hub counts its own). */
interface Tally {
  sent: number
  refused: number
}

const count = (tally: Tally, pushed: Pushed) => {
  if (pushed === "sent") tally.sent += 1
  else if (pushed === "refused") tally.refused += 1
}

/** Something the hub handed over while the subscription held back: an event, or a reset to a head. */
type Held = { readonly event: Event; readonly frame: string } | { readonly head: Position; readonly frame: string }

/** One channel of one session. It holds back live frames until its `subscribed` answer is out. */
class Subscription implements Subscriber {
  private held: Array<Held> | undefined = []
  // The last position the client was told (by an event, `subscribed` or `reset`), as two
  // fields: an object per delivery would be an allocation on the fan-out's hot path.
  private epoch = ""
  private seq = 0
  /** Leaves the hub; set once joined. */
  leave: Effect.Effect<void> | undefined = undefined
  /** The timer that re-checks access when a care relationship's `until` comes. */
  expiry: Fiber.Fiber<void> | undefined = undefined

  private readonly session: Live

  constructor(session: Live) {
    this.session = session
  }

  push(event: Event, frame: string): Pushed {
    if (this.held === undefined) return this.forward(event, frame)
    this.held.push({ event, frame })
    return "none"
  }

  reset(head: Position, frame: string): Pushed {
    if (this.held === undefined) return this.resetTo(head, frame)
    this.held.push({ head, frame })
    return "none"
  }

  /** Holds events back while access is being checked again; `settle` releases them. */
  pause() {
    this.held ??= []
  }

  /**
   * Sends what was held back, then goes live: after `subscribed` at `start` (and its replay),
   * or after a re-check (no `start`: the client's position stands).
   */
  settle(start?: Position, replay: ReadonlyArray<Event> = []): Tally {
    const tally: Tally = { sent: 0, refused: 0 }
    for (const event of replay) count(tally, this.forward(event, Wire.event(event)))
    if (start !== undefined && (start.epoch !== this.epoch || start.seq > this.seq)) this.moveTo(start.epoch, start.seq)
    const pending = this.held ?? []
    this.held = undefined
    for (const item of pending) {
      if ("event" in item) count(tally, this.forward(item.event, item.frame))
      else this.resetTo(item.head, item.frame)
    }
    return tally
  }

  private moveTo(epoch: string, seq: number) {
    this.epoch = epoch
    this.seq = seq
  }

  private resetTo(head: Position, frame: string): Pushed {
    this.moveTo(head.epoch, head.seq)
    return this.offer(frame, undefined)
  }

  private forward(event: Event, frame: string): Pushed {
    // The bus may hand over an event the replay already sent: (epoch, seq) makes it idempotent.
    // The bus resets before any event of a new epoch, so an epoch change never arrives bare.
    if (event.epoch === this.epoch && event.seq <= this.seq) return "none"
    this.moveTo(event.epoch, event.seq)
    return this.offer(frame, event.channel)
  }

  private offer(frame: string, channel: Channel | undefined): Pushed {
    if (this.session.transport.outbox.offer(frame)) return "sent"
    // The socket is ending as too slow. Nothing waits on it here (the publisher and the other
    // subscribers carry on); it is audited once, as the session ends.
    if (channel !== undefined) this.session.refused ??= channel
    return "refused"
  }
}

/**
 * A session's state and its face to the rest of the node: the registry (`LiveSession`) and
 * the deadline sweep (`Watched`) hold this object itself.
 */
class Live implements LiveSession, Watched {
  // Set once the ticket is consumed; `subject`/`jti` also feed the closing audit record.
  id = ""
  subject = "" as Subject
  jti: string | undefined = undefined
  user: User | undefined = undefined
  openedAt = 0
  /** When its ticket was issued: a revocation at or after it ends the session. */
  issuedAt = 0
  opened = false
  deadline = 0
  lastActive = 0
  idleMs = 0
  malformed = 0
  denied = 0
  limited = 0
  messages: TokenBucket.Bucket | undefined = undefined
  readonly subscriptions = new Map<string, Subscription>()
  /** The channel whose frame a full window refused, if any. */
  refused: Channel | undefined = undefined
  /** Care expiry timers and re-checks, forked on demand and interrupted with the session. */
  forked: Set<Fiber.Fiber<void>> | undefined = undefined
  /** Takes the session out of the registry (set once registered). */
  unregister: Effect.Effect<void> = Effect.void
  /** The session fiber's services, for the handlers and the side fibers. */
  context: Context.Context<never> = Context.empty()
  readonly transport: Transport

  constructor(transport: Transport) {
    this.transport = transport
  }

  dueAt() {
    return Math.min(this.deadline, this.lastActive + this.idleMs)
  }

  expire() {
    // Idle logoff (4410, the client waits for its user) is told apart from the deadline (4408,
    // the client reauthenticates); when both fall together the deadline wins.
    this.transport.end(this.lastActive + this.idleMs < this.deadline ? new SessionIdle() : new SessionExpired())
  }

  end(reason: SessionRevoked | Unavailable) {
    this.transport.end(reason)
  }

  recheckCare(): Effect.Effect<void, Unavailable> | undefined {
    // Only a clinician's subscriptions can rest on a care relationship: the registry asks every
    // session each cycle, and a patient's answer must cost nothing.
    if (this.user?._tag !== "Clinician") return undefined
    let care: Array<readonly [string, Channel]> | undefined
    for (const key of this.subscriptions.keys()) {
      const channel = parse(key)
      if (channel !== undefined && Policy.canSubscribe(this.user, channel)._tag === "IfCareRelationship") (care ??= []).push([key, channel])
    }
    return care === undefined ? undefined : Effect.provideContext(recheckCare(this, care), this.context as Context.Context<Services>)
  }

  reauthorize(channel: Channel) {
    const subscription = this.subscriptions.get(print(channel))
    if (subscription === undefined) return
    // Nothing more reaches the client until the check says it may still see the channel.
    subscription.pause()
    this.fork(reauthorize(this, channel))
  }

  reauthorizeAll() {
    for (const key of this.subscriptions.keys()) {
      const channel = parse(key)
      if (channel !== undefined) this.reauthorize(channel)
    }
  }

  fork(effect: Effect.Effect<void, never, Services>): Fiber.Fiber<void> {
    const fiber = Effect.runForkWith(this.context as Context.Context<Services>)(effect)
    const forked = (this.forked ??= new Set())
    forked.add(fiber)
    fiber.addObserver(() => forked.delete(fiber))
    return fiber
  }
}

const get = <I, S>(live: Live, tag: Context.Key<I, S>): S => Context.get(live.context as Context.Context<I>, tag)

/** Runs one session and audits how it ended, whether or not it ever got past the ticket. */
export const run = (transport: Transport) => {
  const live = new Live(transport)
  return Effect.onExit(Effect.flatMap(open(live), () => loop(live)), (exit) => close(live, exit))
}

const close = (live: Live, exit: Exit.Exit<unknown, GatewayError>) =>
  Effect.gen(function*() {
    const error = endOf(exit)
    const code = closeFor(error).code
    if (live.opened) {
      get(live, Deadlines).unwatch(live)
      if (live.forked !== undefined) yield* Fiber.interruptAll([...live.forked])
      for (const key of [...live.subscriptions.keys()]) yield* drop(live, key)
      yield* live.unregister
      yield* Metric.modify(Metrics.connections, -1)
    } else {
      yield* Metrics.connected("refused")
    }
    yield* Metrics.closed(code)
    yield* (yield* AuditLog).append({
      event: "ws.closed",
      ...(live.subject === "" ? {} : { subject: live.subject }),
      ...(live.jti === undefined ? {} : { jti: live.jti }),
      origin: live.transport.origin,
      close: code,
      cause: error._tag
    })
  })

// Untraced, here and in the other programs: a traced Effect.fn captures an Error (its call
// site) and a span per call, which a session holding a socket for hours would keep alive.
const open = Effect.fnUntraced(function*(live: Live) {
  const transport = live.transport
  const settings = yield* Settings
  // A connect flood from one address is cut before its ticket is even looked at.
  yield* admit(`connect-ip:${transport.peer}`, settings.rates.connectsPerIp)
  yield* auditReady
  const claims = yield* Tickets.consume(transport.ticket, transport.origin).pipe(
    // Used once: the socket need not hold a credential (and the header it was cut from) for hours.
    Effect.ensuring(Effect.sync(() => transport.consumed?.()))
  )
  const user = claims.user
  live.user = user
  live.subject = subjectOf(user)
  live.jti = claims.jti
  live.issuedAt = claims.issuedAt
  yield* admit(`connect:${live.subject}`, settings.rates.connectsPerSubject, live.subject)
  live.context = yield* Effect.context<never>()

  const now = yield* Clock.currentTimeMillis
  live.id = nextSessionId()
  live.openedAt = now
  live.lastActive = now
  live.deadline = Math.min(claims.sessionExpiresAt, now + settings.sessionMaxS * 1000)
  live.idleMs = settings.idleTimeoutS * 1000
  // Messages per connection are limited here, not in the shared RateLimiter: they need no
  // agreement between nodes, and a round trip per message would be the wrong price.
  live.messages = TokenBucket.full(settings.rates.messages, now)

  // Registered and its release kept in one uninterruptible step, so the close always has it.
  yield* Effect.uninterruptible(Effect.map((yield* Sessions).register(live), (release) => {
    live.unregister = release
    live.opened = true
  }))
  yield* Metric.modify(Metrics.connections, 1)
  get(live, Deadlines).watch(live)
  yield* (yield* AuditLog).commit({ event: "ws.opened", jti: claims.jti, subject: live.subject, origin: transport.origin, result: "ok" })
  transport.opened?.()
  // The first frame: the ticket is accepted, the session registered and audited; the client
  // learns its deadline and idle timeout now rather than from its first `refresh`.
  transport.outbox.offer(Wire.welcome(transport.id ?? nextConnectionId(), new Date(live.deadline), settings.idleTimeoutS))
  yield* Metrics.connected("opened")
  yield* (transport.id === undefined
    ? Effect.logDebug("session opened")
    : Effect.logDebug("session opened").pipe(Effect.annotateLogs("connection", transport.id)))

})

// The message loop runs after `open` has returned, so no suspended generator stays with it.
// No yield to the scheduler after each message: `receive` already waits when nothing is queued,
// the runtime's operation budget still yields to other fibers during a burst, and a yield per
// message was a setImmediate round trip (and a dispatcher kept per session) for nothing.
const loop = (live: Live) =>
  Effect.forever(Effect.flatMap(live.transport.receive, (text: string) => handle(live, text)), { disableYield: true }).pipe(
    Effect.tapError((error) =>
      error._tag === "TooSlow" && live.refused !== undefined
        ? Effect.andThen(
          Metric.update(Metrics.deliveriesFailed, 1),
          get(live, AuditLog).append({ event: "delivery.failed", subject: live.subject, channel: live.refused, result: "failed", cause: error._tag })
        )
        : Effect.void
    )
  )

// Unique across nodes (the registry's members are session ids) and cheaper than random bytes.
const nextSessionId = Ids.sequence("s")
/** The `welcome` frame's session id when the edge gave no connection id (as in program tests). */
const nextConnectionId = Ids.correlation("c")

const handle = Effect.fnUntraced(function*(live: Live, text: string) {
  const settings = get(live, Settings)
  const now = yield* Clock.currentTimeMillis
  live.lastActive = now
  const taken = TokenBucket.take(live.messages!, settings.rates.messages, now)
  live.messages = taken.bucket
  if (!taken.ok) return yield* limited(live, new RateLimited({ scope: "message", retryAfterMs: taken.retryAfterMs }))
  const outbox = live.transport.outbox
  const decoded = Wire.decodeClientMessage(text)
  if (Result.isFailure(decoded)) {
    yield* Metrics.clientMessage("malformed")
    live.malformed += 1
    if (live.malformed > Limits.MALFORMED_BEFORE_CLOSE) return yield* new ProtocolViolation()
    outbox.offer(Wire.error(undefined, "bad_request"))
    return
  }
  const message = decoded.success
  yield* Metrics.clientMessage(message.type)
  switch (message.type) {
    case "subscribe":
      return yield* subscribe(live, message)
    case "unsubscribe":
      yield* drop(live, print(message.channel))
      outbox.offer(Wire.unsubscribed(message.id, message.channel))
      return
    case "refresh":
      return yield* refresh(live, message.id, message.ticket)
    case "ping":
      outbox.offer(Wire.pong(message.id))
      return
  }
})

const limited = Effect.fnUntraced(function*(live: Live, error: RateLimited, id?: string) {
  live.limited += 1
  yield* Metrics.rateLimited(error.scope)
  if (live.limited === 1) {
    yield* get(live, AuditLog).append({ event: "rate.limited", subject: live.subject, cause: error.scope, result: "refused" })
  }
  if (live.limited > Limits.LIMITED_BEFORE_CLOSE) return yield* error
  live.transport.outbox.offer(Wire.error(id, "rate_limited"))
})

const deny = Effect.fnUntraced(function*(live: Live, id: string, channel: Channel) {
  live.denied += 1
  yield* get(live, AuditLog).append({ event: "subscribe.denied", subject: live.subject, channel, result: "refused" })
  if (live.denied > Limits.DENIALS_BEFORE_CLOSE) return yield* new RepeatedDenials()
  live.transport.outbox.offer(Wire.error(id, frameCodeFor(new SubscriptionDenied())))
})

const drop = (live: Live, key: string): Effect.Effect<void> => {
  const subscription = live.subscriptions.get(key)
  if (subscription === undefined) return Effect.void
  live.subscriptions.delete(key)
  subscription.expiry?.interruptUnsafe()
  const left = Metric.modify(Metrics.subscriptions, -1)
  return subscription.leave === undefined ? left : Effect.andThen(left, subscription.leave)
}

/** Access that never runs out and reaches back to the channel's first event: one's own channel. */
const ALWAYS: ActiveGrant = { since: Number.NEGATIVE_INFINITY, until: Number.POSITIVE_INFINITY }

/**
 * Since and until when the session may see the channel (`until` Infinity: while it lives), or
 * undefined when it may not.
 */
const allowed = (live: Live, channel: Channel): Effect.Effect<ActiveGrant | undefined, Unavailable> => {
  const decision = Policy.canSubscribe(live.user!, channel)
  switch (decision._tag) {
    case "Allow":
      return Effect.succeed(ALWAYS)
    case "Deny":
      return Effect.succeed(undefined)
    case "IfCareRelationship":
      return Effect.flatMap(
        Clock.currentTimeMillis,
        (now) => get(live, CareRelationships).active(decision.clinician, decision.patient, now)
      )
  }
}

/**
 * A replay reaches back only to the start of the current access: an event published before it
 * (say, while a care relationship had ended) is never sent. A replay that would need one is
 * no replay (`recovered: false`): the app refetches through its own API, which applies its rules.
 */
const withinAccess = (replay: ReadonlyArray<Event> | undefined, since: number) =>
  replay === undefined || replay.every((event) => Date.parse(event.at) >= since) ? replay : undefined

/** Arms (or re-arms) the check that ends a subscription when its care relationship runs out. */
const expireAt = (live: Live, key: string, channel: Channel, until: number) => {
  const subscription = live.subscriptions.get(key)
  if (subscription === undefined) return
  subscription.expiry?.interruptUnsafe()
  subscription.expiry = Number.isFinite(until)
    ? live.fork(Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sleep(Math.max(0, until - now))).pipe(
      Effect.andThen(Effect.suspend(() => {
        // The timer is done: re-arming from the check below must not interrupt it mid-check.
        subscription.expiry = undefined
        return reauthorize(live, channel)
      }))
    ))
    : undefined
}

// A held channel checked again. If the check itself fails (a backing service is down), the
// subscription ends: access is never kept on an answer we could not get.
const reauthorize = Effect.fnUntraced(function*(live: Live, channel: Channel) {
  const key = print(channel)
  const subscription = live.subscriptions.get(key)
  if (subscription === undefined) return
  subscription.pause()
  const access = yield* allowed(live, channel).pipe(Effect.orElseSucceed(() => undefined))
  if (live.subscriptions.get(key) !== subscription) return
  if (access !== undefined) {
    const tally = subscription.settle()
    yield* Metrics.delivered(tally.sent, tally.refused)
    return expireAt(live, key, channel, access.until)
  }
  yield* accessEnded(live, key, channel)
})

const accessEnded = Effect.fnUntraced(function*(live: Live, key: string, channel: Channel) {
  live.transport.outbox.offer(Wire.error(undefined, "forbidden", channel))
  yield* drop(live, key)
  yield* get(live, AuditLog).append({ event: "subscribe.denied", subject: live.subject, channel, result: "refused", cause: "access_ended" })
})

// The registry's periodic check of the subscriptions that rest on a care relationship, in
// case an announcement was missed. Unlike `reauthorize` it holds nothing back, and an answer
// it could not get fails it rather than ending access: the registry retries each cycle and
// ends the session (4503) once its checks have failed for too long; a lapse in Redis must not
// read to the client as access ended.
const recheckCare = (live: Live, care: ReadonlyArray<readonly [string, Channel]>) =>
  Effect.forEach(care, ([key, channel]) =>
    Effect.flatMap(allowed(live, channel), (access) =>
      access !== undefined || !live.subscriptions.has(key) ? Effect.void : accessEnded(live, key, channel)), {
    concurrency: "unbounded",
    discard: true
  })

const subscribe = Effect.fnUntraced(function*(live: Live, message: Wire.Subscribe) {
  const settings = get(live, Settings)
  const outbox = live.transport.outbox
  const key = print(message.channel)
  const admitted = yield* get(live, RateLimiter).consume(`subscribe:${live.subject}`, settings.rates.subscribes).pipe(Effect.result)
  if (Result.isFailure(admitted)) {
    if (admitted.failure._tag === "RateLimited") return yield* limited(live, admitted.failure, message.id)
    outbox.offer(Wire.error(message.id, "unavailable"))
    return
  }
  const access = yield* allowed(live, message.channel).pipe(Effect.result)
  if (Result.isFailure(access)) {
    outbox.offer(Wire.error(message.id, "unavailable"))
    return
  }
  if (access.success === undefined) return yield* deny(live, message.id, message.channel)
  const grant = access.success
  const existing = live.subscriptions.get(key)
  if (existing === undefined && live.subscriptions.size >= settings.maxSubscriptionsPerConnection) {
    outbox.offer(Wire.error(message.id, "rate_limited"))
    return
  }
  if (existing !== undefined) yield* drop(live, key)
  const subscription = new Subscription(live)
  live.subscriptions.set(key, subscription)
  yield* Metric.modify(Metrics.subscriptions, 1)
  const bus = get(live, EventBus)
  const joined = yield* Effect.gen(function*() {
    // Joined and its leave kept in one uninterruptible step, so no interruption in between can
    // leave the hub holding a subscriber nobody will take out.
    const joined = yield* Effect.uninterruptible(Effect.flatMap(get(live, Hub).join(message.channel, subscription), (joined) => {
      // Dropped while joining (a re-check found access ended): leave at once.
      if (live.subscriptions.get(key) !== subscription) return Effect.as(joined.leave, undefined)
      subscription.leave = joined.leave
      return Effect.succeed(joined)
    }))
    if (joined === undefined) return undefined
    const head = joined.position
    // `since` without `epoch` (v1) is taken in the current epoch; another epoch is no replay.
    const from = message.since === undefined ? undefined : { epoch: message.epoch ?? head.epoch, seq: message.since }
    const replay = from === undefined || from.epoch !== head.epoch || from.seq > head.seq
      ? undefined
      : withinAccess(yield* bus.since(message.channel, from), grant.since)
    return { head, replay }
  }).pipe(Effect.result)
  if (Result.isFailure(joined)) {
    yield* drop(live, key)
    outbox.offer(Wire.error(message.id, frameCodeFor(joined.failure)))
    return
  }
  if (joined.success === undefined) return
  const { head, replay } = joined.success
  outbox.offer(Wire.subscribed(message.id, message.channel, head, replay !== undefined))
  const tally = subscription.settle(head, replay ?? [])
  yield* Metrics.delivered(tally.sent, tally.refused)
  expireAt(live, key, message.channel, grant.until)
  yield* get(live, AuditLog).append({ event: "subscribe.allowed", subject: live.subject, channel: message.channel, result: "ok" })
})

const refresh = Effect.fnUntraced(function*(live: Live, id: string, ticket: string) {
  const outbox = live.transport.outbox
  const renewed = yield* Tickets.consume(ticket, live.transport.origin).pipe(Effect.result)
  if (Result.isFailure(renewed) || !sameUser(renewed.success.user, live.user!)) {
    outbox.offer(Wire.error(id, "forbidden"))
    return
  }
  const now = yield* Clock.currentTimeMillis
  // The closing record keeps the jti of the ticket that opened the session, as ws.opened has it.
  live.deadline = Math.min(renewed.success.sessionExpiresAt, now + get(live, Settings).sessionMaxS * 1000)
  outbox.offer(Wire.refreshed(id, new Date(live.deadline)))
})

const sameUser = (a: User, b: User): boolean => a._tag === b._tag && a.ref === b.ref
