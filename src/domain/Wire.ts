// Client and server frames (contract §3): the one place frames are decoded and encoded.
// Decoding is strict (unknown fields, types and extra keys are errors) and never throws.
import { Result, Schema } from "effect"
import { type Channel, ChannelFromString, print } from "./Channel.ts"
import { MalformedInput } from "./Errors.ts"
import type { FrameErrorCode } from "./Close.ts"
import type { Event } from "./Event.ts"
import { CorrelationId } from "./Ref.ts"
import { JSON_DEPTH } from "./Limits.ts"
import { Epoch, type Position } from "./Position.ts"
import { TicketString } from "./Ticket.ts"

const Seq = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }))

export const Subscribe = Schema.Struct({
  type: Schema.Literal("subscribe"),
  id: CorrelationId,
  channel: ChannelFromString,
  since: Schema.optionalKey(Seq),
  /** v1.1: the epoch `since` belongs to; without it, `since` is taken in the current epoch (v1). */
  epoch: Schema.optionalKey(Epoch)
})
export const Unsubscribe = Schema.Struct({
  type: Schema.Literal("unsubscribe"),
  id: CorrelationId,
  channel: ChannelFromString
})
export const Refresh = Schema.Struct({
  type: Schema.Literal("refresh"),
  id: CorrelationId,
  ticket: TicketString
})
export const Ping = Schema.Struct({ type: Schema.Literal("ping"), id: CorrelationId })

export const ClientMessage = Schema.Union([Subscribe, Unsubscribe, Refresh, Ping]).pipe(Schema.toTaggedUnion("type"))
export type ClientMessage = typeof ClientMessage.Type
export type Subscribe = typeof Subscribe.Type

const decodeMessage = Schema.decodeUnknownResult(ClientMessage, { onExcessProperty: "error" })

/** JSON text → a message, or MalformedInput for anything else (bad JSON included). */
export const decodeClientMessage = (text: string): Result.Result<ClientMessage, MalformedInput> => {
  const json = parseJson(text)
  if (json === invalid) return Result.fail(new MalformedInput())
  return Result.mapError(decodeMessage(json), () => new MalformedInput())
}

const invalid: unique symbol = Symbol("invalid")

/** Deepest nesting outside strings, stopping as soon as it passes `limit`. */
const tooDeep = (text: string, limit: number): boolean => {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 92) i++ // backslash: skip the escaped character
      else if (c === 34) inString = false
    } else if (c === 34) inString = true
    else if (c === 123 || c === 91) {
      if (++depth > limit) return true
    } else if (c === 125 || c === 93) depth--
  }
  return false
}

/**
 * JSON.parse that answers `invalid` instead of throwing, and refuses nesting deeper than
 * JSON_DEPTH before parsing: none of our messages nests, and depth is what makes a small
 * input expensive.
 */
export const parseJson = (text: string): unknown => {
  if (tooDeep(text, JSON_DEPTH)) return invalid
  try {
    return JSON.parse(text)
  } catch {
    return invalid
  }
}
export const isInvalidJson = (value: unknown): boolean => value === invalid

// Server frames are built by hand with a fixed key order; every value in them has
// already been validated as an opaque ref, a kind or a number, so JSON.stringify is safe.

/** v1.1: the first frame of a session, once its ticket is accepted and it is registered. */
export const welcome = (session: string, expiresAt: Date, idleTimeoutS: number): string =>
  JSON.stringify({ type: "welcome", session, expiresAt: expiresAt.toISOString(), idleTimeoutS })

export const subscribed = (id: string, channel: Channel, head: Position, recovered: boolean): string =>
  JSON.stringify({ type: "subscribed", id, channel: print(channel), epoch: head.epoch, seq: head.seq, recovered })

/**
 * v1.1: gap-free delivery on a live subscription can no longer be promised; the client
 * refetches, and live events follow from `seq + 1` of `epoch`.
 */
export const reset = (channel: Channel, head: Position): string =>
  JSON.stringify({ type: "reset", channel: print(channel), epoch: head.epoch, seq: head.seq })

export const unsubscribed = (id: string, channel: Channel): string =>
  JSON.stringify({ type: "unsubscribed", id, channel: print(channel) })

export const refreshed = (id: string, expiresAt: Date): string =>
  JSON.stringify({ type: "refreshed", id, expiresAt: expiresAt.toISOString() })

export const pong = (id: string): string => JSON.stringify({ type: "pong", id })

/** `id` is omitted when the failure is not an answer to one message (a lost subscription). */
export const error = (id: string | undefined, code: FrameErrorCode, channel?: Channel): string =>
  JSON.stringify(
    id === undefined
      ? channel === undefined ? { type: "error", code } : { type: "error", code, channel: print(channel) }
      : { type: "error", id, code }
  )

/** Encoded once per event per node, then written to every local subscriber as is. */
export const event = (e: Event): string =>
  JSON.stringify({
    type: "event",
    channel: print(e.channel),
    epoch: e.epoch,
    seq: e.seq,
    id: e.id,
    kind: e.kind,
    ref: e.ref,
    at: e.at
  })
