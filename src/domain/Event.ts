// What a service publishes and what a subscriber receives (contract §4): opaque ids and a
// kind from an allowlist, nothing else. A field outside this list is a 400.
import { Schema } from "effect"
import { type Channel, ChannelFromString } from "./Channel.ts"
import { EventId, EventRef } from "./Ref.ts"

export const DEFAULT_EVENT_KINDS: ReadonlyArray<string> = [
  "appointment.created",
  "appointment.updated",
  "appointment.cancelled",
  "message.received",
  "result.available",
  "document.available",
  "task.assigned"
]

/** The shape of a kind; whether it is allowed is a setting (TIDINGS_EVENT_KINDS). */
export const EventKind = Schema.String.check(Schema.isPattern(/^[a-z][a-z0-9_]{0,31}(\.[a-z][a-z0-9_]{0,31}){1,3}$/))

/** `POST /v1/events` body. */
export const PublishRequest = Schema.Struct({
  channel: ChannelFromString,
  kind: EventKind,
  ref: EventRef,
  id: Schema.optionalKey(EventId)
})
export type PublishRequest = typeof PublishRequest.Type

/** An event before the bus gives it its place in the channel. */
export interface EventDraft {
  readonly id: EventId
  readonly channel: Channel
  readonly kind: string
  readonly ref: EventRef
  /** ISO-8601 time the gateway accepted it. */
  readonly at: string
}

export interface Event extends EventDraft {
  /** The life of the channel's sequence state the event belongs to (domain/Position.ts). */
  readonly epoch: string
  /** Position in the epoch: strictly increasing by one, shared by every node. */
  readonly seq: number
}

/** `202` answer to a publish; the same for a repeated `id`. */
export interface Accepted {
  readonly id: EventId
  readonly channel: Channel
  readonly seq: number
}
