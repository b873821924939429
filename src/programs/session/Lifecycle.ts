// A session's life, from ticket to close, as a plain state object (`Live`): no fiber at rest.
// Each client frame, deadline, revocation or care change runs one short program on it, one
// at a time for its messages; its deadline is a due time on the node's Deadlines sweep.
import { Clock, type Context, Effect, Exit, Fiber, Metric } from "effect"
import { type Channel, parse, print } from "../../domain/Channel.ts"
import { closeFor } from "../../domain/Close.ts"
import { type GatewayError, SessionExpired, SessionIdle, type Unavailable } from "../../domain/Errors.ts"
import * as Policy from "../../domain/Policy.ts"
import { type Subject, subjectOf, type User } from "../../domain/Principal.ts"
import * as TokenBucket from "../../domain/TokenBucket.ts"
import * as Wire from "../../domain/Wire.ts"
import type { Watched } from "../../services/Deadlines.ts"
import type { LiveSession } from "../../services/Sessions.ts"
import { admit, auditReady, refused } from "../Admit.ts"
import * as Ids from "../Ids.ts"
import * as Metrics from "../Metrics.ts"
import * as Tickets from "../Tickets.ts"
import { reauthorize, recheckCare } from "./Access.ts"
import { type Requirements, type Services, servicesOf } from "./Services.ts"
import { handle } from "./Messages.ts"
import { drop, type Subscription } from "./Subscription.ts"
import { endOf, type Inbound, type Interruption, type SessionEnd, type Transport, type TransportEnd } from "./Transport.ts"

/** Client frames waiting before the socket stops reading (backpressure on a flooding client). */
const INBOUND_HIGH_WATER = 32

/**
 * A session's state and its faces to the rest of the node: the edge (`Inbound`), the registry
 * (`LiveSession`) and the Deadlines sweep (`Watched`) hold this object itself.
 */
export class Live implements Inbound, LiveSession, Watched {
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
  /** Care changes announced for this session so far: a subscribe in flight compares it. */
  careChanges = 0
  /** The channel whose frame a full window refused, if any. */
  refused: Channel | undefined = undefined
  /** Care re-checks, forked on demand and interrupted with the session. */
  forked: Set<Fiber.Fiber<void>> | undefined = undefined
  /** Takes the session out of the registry (set once registered). */
  unregister: Effect.Effect<void> = Effect.void
  private inbox: Array<string> | undefined = undefined
  /** A program (open, messages, close) is running on the session; at most one at a time. */
  private busy = false
  private running: Fiber.Fiber<void, SessionEnd> | undefined = undefined
  private ending: TransportEnd | Interruption | undefined = undefined
  private closing = false
  readonly transport: Transport
  readonly context: Context.Context<Requirements>
  readonly services: Services

  constructor(transport: Transport, context: Context.Context<Requirements>) {
    this.transport = transport
    this.context = context
    this.services = servicesOf(context)
  }

  receive(text: string) {
    if (this.ending !== undefined || this.closing) return
    const inbox = (this.inbox ??= [])
    inbox.push(text)
    if (inbox.length === INBOUND_HIGH_WATER) this.transport.pause?.()
    if (!this.busy) this.run(drain(this))
  }

  end(reason: TransportEnd | Interruption) {
    if (this.ending !== undefined || this.closing) return
    this.ending = reason
    if (reason._tag === "ShuttingDown" && this.running !== undefined) return this.running.interruptUnsafe()
    // Ended from inside a fan-out or a handler (an offer that found the window full): the
    // caller finishes before the session closes.
    if (!this.busy) queueMicrotask(() => this.busy || this.closing ? undefined : this.run(drain(this)))
  }

  /** The next client frame to handle, if any. */
  next(): string | undefined {
    const text = this.inbox?.shift()
    if (text !== undefined && this.inbox!.length === INBOUND_HIGH_WATER / 2 - 1) this.transport.resume?.()
    return text
  }

  /** Why the session is to end, once something has ended it. */
  endsWith(): TransportEnd | Interruption | undefined {
    return this.ending
  }

  dueAt() {
    return Math.min(this.deadline, this.lastActive + this.idleMs)
  }

  expire() {
    // Idle logoff (4410, the client waits for its user) is told apart from the deadline (4408,
    // the client reauthenticates); when both fall together the deadline wins.
    this.end(this.lastActive + this.idleMs < this.deadline ? new SessionIdle() : new SessionExpired())
  }

  recheckCare(): Effect.Effect<void, Unavailable> | undefined {
    // Only a clinician's subscriptions can rest on a care relationship: the registry asks every
    // session each cycle, and a patient's answer must cost nothing.
    if (this.user?._tag !== "Clinician") return undefined
    let care: Array<readonly [string, Channel]> | undefined
    for (const [key, subscription] of this.subscriptions) {
      // A subscribe still in flight checks its own access before it answers.
      if (!subscription.answered) continue
      if (Policy.canSubscribe(this.user, subscription.channel)._tag === "IfCareRelationship") (care ??= []).push([key, subscription.channel])
    }
    return care === undefined ? undefined : Effect.provideContext(recheckCare(this, care), this.context)
  }

  reauthorize(channel: Channel) {
    const subscription = this.subscriptions.get(print(channel))
    // Unanswered, it belongs to its subscribe, which checks again when it heard a change.
    if (subscription === undefined || !subscription.answered) return
    // Nothing more reaches the client until the check says it may still see the channel.
    subscription.pause()
    this.fork(reauthorize(this, channel))
  }

  reauthorizeAll() {
    this.careChanges += 1
    for (const subscription of this.subscriptions.values()) this.reauthorize(subscription.channel)
  }

  private fork(effect: Effect.Effect<void, never, Requirements>) {
    // Closing: the close interrupts what was forked before it; nothing may start after.
    if (this.closing) return
    const fiber = Effect.runForkWith(this.context)(effect)
    const forked = (this.forked ??= new Set())
    forked.add(fiber)
    fiber.addObserver(() => forked.delete(fiber))
  }

  /** Runs the session's next program; when it ends the session, the close runs next. */
  run(program: Effect.Effect<void, SessionEnd, Requirements>) {
    this.busy = true
    const fiber = Effect.runForkWith(this.context)(program)
    this.running = fiber
    fiber.addObserver((exit) => {
      if (this.running === fiber) this.running = undefined
      this.busy = false
      if (this.closing) return
      if (Exit.isFailure(exit)) {
        this.closing = true
        return this.run(close(this, exit))
      }
      // Ended while the program ran, after its last look at `ending`.
      if (this.ending !== undefined || (this.inbox?.length ?? 0) > 0) this.run(drain(this))
    })
  }
}

/**
 * Starts a session on a socket and hands back what the edge calls on it. The session then runs
 * by itself: ticket, registration, `welcome`, each client message, until it closes.
 */
export const start = (transport: Transport): Effect.Effect<Inbound, never, Requirements> =>
  Effect.map(Effect.context<Requirements>(), (context) => starter(context)(transport))

/**
 * `start` with a context given once, for the edge: the session keeps that context for its
 * whole life. A context taken inside a run (`runSync`) would carry that run's own scheduler
 * and fiber cache, which every idle session would then hold (about 1 KiB each in S1).
 */
export const starter = (context: Context.Context<Requirements>) => (transport: Transport): Inbound => {
  const live = new Live(transport, context)
  live.run(Effect.andThen(open(live), drain(live)))
  return live
}

/** Handles what has arrived, one message at a time; fails with the session's end once ended. */
const drain = (live: Live): Effect.Effect<void, SessionEnd, Requirements> =>
  Effect.suspend(() => {
    const text = live.next()
    if (text !== undefined) return Effect.andThen(handle(live, text), drain(live))
    const ending = live.endsWith()
    return ending === undefined ? Effect.void : Effect.fail(ending)
  })

// Untraced, here and in the other programs: a traced Effect.fn captures an Error (its call
// site) and a span per call, which a session holding a socket for hours would keep alive.
const open = Effect.fnUntraced(function*(live: Live) {
  const { transport, services } = live
  const { settings, audit } = services
  // A connect flood from one address is cut before its ticket is even looked at.
  yield* admit(`connect-ip:${transport.peer}`, settings.rates.connectsPerIp)
  yield* auditReady
  const claims = yield* Tickets.verify(transport.ticket, transport.origin).pipe(
    // Used once: the socket need not hold a credential (and the header it was cut from) for hours.
    Effect.ensuring(Effect.sync(() => transport.consumed?.()))
  )
  const user = claims.user
  live.user = user
  live.subject = subjectOf(user)
  live.jti = claims.jti
  live.issuedAt = claims.issuedAt

  const now = yield* Clock.currentTimeMillis
  live.id = nextSessionId()
  live.openedAt = now
  live.lastActive = now
  live.deadline = Math.min(claims.sessionExpiresAt, now + settings.sessionMaxS * 1000)
  live.idleMs = settings.idleTimeoutS * 1000
  // Messages per connection are limited here, not in the shared RateLimiter: they need no
  // agreement between nodes, and a round trip per message would be the wrong price.
  live.messages = TokenBucket.full(settings.rates.messages, now)

  // One step takes the ticket, checks the revocation, takes the subject's connect token and
  // registers; registered and its release kept uninterruptibly, so the close always has it.
  const opened = Effect.uninterruptible(Effect.map(services.sessions.open(live, claims.jti, settings.rates.connectsPerSubject), (release) => {
    live.unregister = release
    live.opened = true
  }))
  yield* Tickets.redeem(claims, opened, transport.origin).pipe(
    Effect.tapError((error) => error._tag === "RateLimited" ? refused(error, live.subject) : Effect.void)
  )
  yield* Metric.modify(Metrics.connections, 1)
  services.deadlines.watch(live)
  yield* audit.commit({ event: "ws.opened", jti: claims.jti, subject: live.subject, origin: transport.origin, result: "ok" })
  transport.opened?.()
  // The first frame: the ticket is accepted, the session registered and audited; the client
  // learns its deadline and idle timeout now rather than from its first `refresh`.
  transport.outbox.offer(Wire.welcome(transport.id ?? nextConnectionId(), new Date(live.deadline), settings.idleTimeoutS))
  yield* Metrics.connected("opened")
  yield* (transport.id === undefined
    ? Effect.logDebug("session opened")
    : Effect.logDebug("session opened").pipe(Effect.annotateLogs("connection", transport.id)))
})

// Unique across nodes (the registry's members are session ids) and cheaper than random bytes.
const nextSessionId = Ids.sequence("s")
/** The `welcome` frame's session id when the edge gave no connection id (as in program tests). */
const nextConnectionId = Ids.correlation("c")

/** Takes the session out of everything that holds it, audits how it ended, tells the edge. */
// The socket is told last, and always: a defect in the clean-up above it must not leave the
// socket open and the node's shutdown waiting for it.
const close = (live: Live, exit: Exit.Exit<unknown, SessionEnd>) => {
  const error: GatewayError = endOf(exit)
  return cleanUp(live, error).pipe(Effect.ensuring(Effect.sync(() => live.transport.closed(error, exit))))
}

const cleanUp = (live: Live, error: GatewayError) =>
  Effect.gen(function*() {
    const { audit, deadlines } = live.services
    const code = closeFor(error).code
    if (error._tag === "TooSlow" && live.refused !== undefined) {
      yield* Metric.update(Metrics.deliveriesFailed, 1)
      yield* audit.append({ event: "delivery.failed", subject: live.subject, channel: live.refused, result: "failed", cause: error._tag })
    }
    if (live.opened) {
      deadlines.unwatch(live)
      if (live.forked !== undefined) yield* Fiber.interruptAll([...live.forked])
      for (const key of [...live.subscriptions.keys()]) yield* drop(live, key)
      yield* live.unregister
      yield* Metric.modify(Metrics.connections, -1)
    } else {
      yield* Metrics.connected("refused")
    }
    yield* Metrics.closed(code)
    yield* audit.append({
      event: "ws.closed",
      ...(live.subject === "" ? {} : { subject: live.subject }),
      ...(live.jti === undefined ? {} : { jti: live.jti }),
      origin: live.transport.origin,
      close: code,
      cause: error._tag
    })
  })
