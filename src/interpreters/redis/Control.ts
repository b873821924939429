// The control channel every node listens to: revocations (by hashed subject) and changed care
// relationships. Messages are transient pub/sub traffic inside the deployment's Redis; what
// is stored (keys) never holds a raw subject ref.
import { Effect } from "effect"
import type { Redis } from "ioredis"
import { Unavailable } from "../../domain/Errors.ts"
import { Keys } from "./Keys.ts"

export type ControlMessage =
  | { readonly t: "revoke"; readonly s: string }
  | { readonly t: "care"; readonly c: string; readonly p: string }

export const publish = (redis: Redis, message: ControlMessage, service: Unavailable["service"]) =>
  Effect.tryPromise({
    try: () => redis.publish(Keys.control, JSON.stringify(message)),
    catch: () => new Unavailable({ service })
  }).pipe(Effect.asVoid)

export const decode = (text: string): ControlMessage | undefined => {
  try {
    const message = JSON.parse(text) as Partial<ControlMessage>
    if (message.t === "revoke" && typeof message.s === "string") return message as ControlMessage
    if (message.t === "care" && typeof message.c === "string" && typeof message.p === "string") return message as ControlMessage
    return undefined
  } catch {
    return undefined
  }
}
