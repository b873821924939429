// The outbound window of one connection as pure arithmetic over three counters: frames sent,
// the highest count the client acknowledged (a numbered ping's pong), and the count the last
// ping carried. The connection holds the counters itself (no object per socket); these
// functions are the rules, tested on their own (docs/decisions/0003).
import { ACK_EVERY_FRAMES } from "../domain/Limits.ts"

export interface WindowLimits {
  /** Frames sent but not yet acknowledged by a pong. */
  readonly frames: number
  /** Bytes `ws` holds because the kernel would not take them. */
  readonly bytes: number
}

export interface WindowState {
  sent: number
  acked: number
  pingedAt: number
}

/** Whether one more frame may go out, with `buffered` bytes still held by the socket. */
export const admits = (state: WindowState, limits: WindowLimits, buffered: number): boolean =>
  state.sent - state.acked < limits.frames && buffered <= limits.bytes

/** Counts a frame sent; true when enough went out since the last ping to ask for an ack. */
export const recordSent = (state: WindowState): boolean => {
  state.sent += 1
  return state.sent - state.pingedAt >= ACK_EVERY_FRAMES
}

/** The payload of a ping sent now: the frames sent so far, which its pong will acknowledge. */
export const pingPayload = (state: WindowState): string => {
  state.pingedAt = state.sent
  return String(state.sent)
}

/**
 * A pong's payload acknowledges every frame up to the count it carries. Anything else (not a
 * number, lower than what is already acknowledged, more than was ever sent) changes nothing:
 * a client cannot open its window by lying.
 */
export const acknowledge = (state: WindowState, payload: string): void => {
  const upTo = Number(payload)
  if (payload.length > 0 && Number.isSafeInteger(upTo) && upTo > state.acked && upTo <= state.sent) state.acked = upTo
}
