// The gateway's operational metrics, kept in Effect's metric registry and exposed by the
// internal listener (server/MetricsListener.ts). Every label value comes from a fixed code set or from
// configuration (the event-kind and origin allowlists): never an id, a ref, or caller input.
import { type Context, Effect, Metric } from "effect"
import { CloseTable } from "../domain/Close.ts"
import { RateScope, TicketCause, UnauthenticatedCause } from "../domain/Errors.ts"
import { RESET_CAUSES, type ResetCause } from "../domain/Position.ts"
import { AuditMetrics } from "../services/AuditLog.ts"

/** Why an upgrade request was refused before any WebSocket existed. */
export const UPGRADE_REJECTIONS = ["path", "origin", "handshake", "subprotocol"] as const
export type UpgradeRejection = typeof UPGRADE_REJECTIONS[number]

export const CLIENT_MESSAGE_TYPES = ["subscribe", "unsubscribe", "refresh", "ping", "malformed"] as const
export type ClientMessageType = typeof CLIENT_MESSAGE_TYPES[number]

/** Which credential failed: an access token on HTTPS, or a WebSocket ticket. */
export const CREDENTIALS = ["token", "ticket"] as const
export type Credential = typeof CREDENTIALS[number]

export const CLOSE_CODES: ReadonlyArray<string> = [...new Set(Object.values(CloseTable).map((row) => String(row.code)))]

/** The label an origin gets: itself when it is on the allowlist, else "other" (never caller text). */
export const OTHER_ORIGIN = "other"

/**
 * Every label of every metric with a set fixed in code. `kind` and `origin` are bounded by
 * configuration instead; see `labelValuesAllowed`.
 */
export const FIXED_LABELS: Readonly<Record<string, Readonly<Record<string, ReadonlyArray<string>>>>> = {
  tidings_connects_total: { result: ["opened", "refused"] },
  tidings_closes_total: { code: CLOSE_CODES },
  tidings_client_messages_total: { type: CLIENT_MESSAGE_TYPES },
  tidings_deliveries_total: { result: ["sent", "refused"] },
  tidings_resets_total: { cause: RESET_CAUSES },
  tidings_rate_limited_total: { scope: RateScope.literals },
  tidings_audit_records_total: { result: ["written", "dropped"] },
  tidings_access_token_checks_total: { source: ["memory", "signature"] },
  tidings_origin_rejections_total: { reason: UPGRADE_REJECTIONS },
  tidings_auth_failures_total: {
    credential: CREDENTIALS,
    cause: [...new Set([...UnauthenticatedCause.literals, ...TicketCause.literals])]
  }
}

// One metric object per label value, built once: an update on it then allocates nothing
// (Metric.withAttributes would build a new context on every update).
const series = <K extends string, M>(values: ReadonlyArray<K>, make: (value: K) => M): Record<K, M> => {
  const table = {} as Record<K, M>
  for (const value of values) table[value] = make(value)
  return table
}

const counter = (name: string, description: string, attributes?: Record<string, string>) =>
  Metric.counter(name, { description, incremental: true, ...(attributes === undefined ? {} : { attributes }) })

/** Deliveries a socket refused because its client had stopped reading (it then closes 4508). */
export const deliveriesFailed = counter(
  "tidings_deliveries_failed_total",
  "Deliveries refused by a full outbound window (the connection closes 4508)"
)

export const connections = Metric.gauge("tidings_connections", { description: "Open WebSocket sessions (past their ticket)" })
export const subscriptions = Metric.gauge("tidings_subscriptions", { description: "Live channel subscriptions on this node" })

const connects = series(["opened", "refused"] as const, (result) =>
  counter("tidings_connects_total", "WebSocket connection attempts, opened or refused (upgrade or session start)", { result }))

const closes = new Map(CLOSE_CODES.map((code) =>
  [Number(code), counter("tidings_closes_total", "WebSocket sessions ended, by close code", { code })] as const
))

const clientMessages = series(CLIENT_MESSAGE_TYPES, (type) =>
  counter("tidings_client_messages_total", "Client messages decoded, by type (malformed: did not decode)", { type }))

// Kinds come from the configured allowlist (checked before this is reached), so the map
// is bounded by configuration, not by input.
const published = new Map<string, Metric.Counter<number>>()

export const deliveriesSent = counter("tidings_deliveries_total", "Event frames offered to sockets", { result: "sent" })
export const deliveriesRefused = counter("tidings_deliveries_total", "Event frames offered to sockets", { result: "refused" })

export const deliveryLatency = Metric.histogram("tidings_delivery_latency_ms", {
  description: "From an event's publish time to this node having offered it to its sockets",
  boundaries: Metric.exponentialBoundaries({ start: 1, factor: 2, count: 14 })
})

const resets = series(RESET_CAUSES, (cause) =>
  counter("tidings_resets_total", "Live subscriptions sent a reset: gap-free delivery could no longer be promised", { cause }))

/** Resets of `subscriptions` live subscriptions of one channel, from the hub's callback. */
export const recordResets = (context: Context.Context<never>, cause: ResetCause, subscriptions: number) => {
  if (subscriptions > 0) resets[cause].updateUnsafe(subscriptions, context)
}

const revocations = counter("tidings_revocations_total", "Admin revocations of a subject's sessions accepted by this node")

/** An admin revoked a subject's sessions (the subject itself is in the audit trail, never here). */
export const revoked = Metric.update(revocations, 1)

export const handshakeDuration = Metric.histogram("tidings_handshake_duration_ms", {
  description: "From a WebSocket upgrade request to its session being open (ticket consumed, session registered)",
  boundaries: Metric.exponentialBoundaries({ start: 1, factor: 2, count: 14 })
})

const rateLimits = series(RateScope.literals, (scope) =>
  counter("tidings_rate_limited_total", "Requests, connects or messages refused by a rate limit", { scope }))

const originRejections = new Map<string, Metric.Counter<number>>()

const authFailures = new Map<string, Metric.Counter<number>>()

export const connected = (result: "opened" | "refused") => Metric.update(connects[result], 1)

/** `code` is always a CloseTable code (closeFor maps every error onto that table). */
export const closed = (code: number) => {
  const metric = closes.get(code)
  return metric === undefined ? Metric.update(closes.get(CloseTable.internalError.code)!, 1) : Metric.update(metric, 1)
}

export const clientMessage = (type: ClientMessageType) => Metric.update(clientMessages[type], 1)

/** Call only with a kind that passed the configured allowlist. */
export const eventPublished = (kind: string) => {
  let metric = published.get(kind)
  if (metric === undefined) {
    metric = counter("tidings_events_published_total", "Events accepted for publishing, by kind", { kind })
    published.set(kind, metric)
  }
  return Metric.update(metric, 1)
}

export const rateLimited = (scope: RateScope) => Metric.update(rateLimits[scope], 1)

/**
 * An upgrade refused. `origin` is labelled only when it is on the allowlist; anything else
 * (absent, "null", a foreign site) is "other", so the series stay bounded by configuration.
 */
const originRejection = (reason: UpgradeRejection, origin: string | undefined, allowed: ReadonlySet<string>) => {
  const label = origin !== undefined && allowed.has(origin) ? origin : OTHER_ORIGIN
  const key = `${reason} ${label}`
  let metric = originRejections.get(key)
  if (metric === undefined) {
    metric = counter("tidings_origin_rejections_total", "WebSocket upgrades refused, by reason and (allowed) origin", {
      reason,
      origin: label
    })
    originRejections.set(key, metric)
  }
  return metric
}

export const upgradeRejected = (reason: UpgradeRejection, origin: string | undefined, allowed: ReadonlySet<string>) =>
  Metric.update(originRejection(reason, origin, allowed), 1)

const authFailure = (credential: Credential, cause: UnauthenticatedCause | TicketCause) => {
  const key = `${credential} ${cause}`
  let metric = authFailures.get(key)
  if (metric === undefined) {
    metric = counter("tidings_auth_failures_total", "Access tokens and tickets refused, by cause", { credential, cause })
    authFailures.set(key, metric)
  }
  return metric
}

export const authFailed = (credential: Credential, cause: UnauthenticatedCause | TicketCause) =>
  Metric.update(authFailure(credential, cause), 1)

/**
 * Called once at node start (server/Server.ts): every counter an alert of docs/alerts.yml reads
 * is exported at 0, for each of its fixed label values, before its first event. A series that
 * first appears at 1 is no increase to Prometheus, so that alert would miss its first event.
 * Histograms too, so their quantile expressions have a series to read.
 */
export const initialize = (allowedOrigins: ReadonlySet<string>) =>
  Effect.forEach(
    [revocations, deliveryLatency, handshakeDuration, ...closes.values(), ...Object.values(resets), AuditMetrics.written, AuditMetrics.dropped] as ReadonlyArray<Metric.Metric<any, any>>,
    (metric) => Metric.value(metric),
    { discard: true }
  ).pipe(
    Effect.andThen(Effect.forEach(UnauthenticatedCause.literals, (cause) => Metric.value(authFailure("token", cause)), { discard: true })),
    Effect.andThen(Effect.forEach(TicketCause.literals, (cause) => Metric.value(authFailure("ticket", cause)), { discard: true })),
    Effect.andThen(Effect.forEach(UPGRADE_REJECTIONS, (reason) =>
      Effect.forEach([...allowedOrigins, OTHER_ORIGIN], (origin) => Metric.value(originRejection(reason, origin, allowedOrigins)), {
        discard: true
      }), { discard: true }))
  )

/**
 * One event's fan-out on this node, recorded synchronously from the hub's callback: a few
 * registry updates per event, whatever the number of sockets, and no fiber.
 */
export const recordFanOut = (context: Context.Context<never>, sent: number, refused: number, latencyMs: number) => {
  if (sent > 0) deliveriesSent.updateUnsafe(sent, context)
  if (refused > 0) deliveriesRefused.updateUnsafe(refused, context)
  if (sent + refused > 0 && Number.isFinite(latencyMs)) deliveryLatency.updateUnsafe(Math.max(0, latencyMs), context)
}

/** Deliveries made outside the hub's fan-out (replay, and events held back until `subscribed`). */
export const delivered = (sent: number, refused: number) =>
  Effect.andThen(Metric.update(deliveriesSent, sent), Metric.update(deliveriesRefused, refused))
