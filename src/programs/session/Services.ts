// The services a session uses, named in one type (`Requirements`, what `Session.start` needs)
// and resolved once per node into one record its handlers read: no lookup per call, and a
// harness missing one fails to compile rather than at the first message that needs it.
import { Context } from "effect"
import { AuditLog } from "../../services/AuditLog.ts"
import { CareRelationships } from "../../services/CareRelationships.ts"
import { Deadlines } from "../../services/Deadlines.ts"
import { EventBus } from "../../services/EventBus.ts"
import { Hub } from "../../services/Hub.ts"
import { RateLimiter } from "../../services/RateLimiter.ts"
import { Sessions } from "../../services/Sessions.ts"
import { Settings } from "../../services/Settings.ts"
import type { TicketSigner } from "../../services/TicketSigner.ts"
import type { TicketStore } from "../../services/TicketStore.ts"

/** Every service a session uses: its programs run with exactly these. */
export type Requirements =
  | Settings | AuditLog | RateLimiter | EventBus | Hub | CareRelationships | Sessions | Deadlines | TicketSigner | TicketStore

/** The services a session's handlers call, resolved once per node rather than looked up per call. */
export interface Services {
  readonly settings: Settings["Service"]
  readonly audit: AuditLog["Service"]
  readonly limiter: RateLimiter["Service"]
  readonly bus: EventBus["Service"]
  readonly hub: Hub["Service"]
  readonly care: CareRelationships["Service"]
  readonly sessions: Sessions["Service"]
  readonly deadlines: Deadlines["Service"]
}

// Every session started from one context (the node's) shares one record.
const resolved = new WeakMap<Context.Context<Requirements>, Services>()
export const servicesOf = (context: Context.Context<Requirements>): Services => {
  let services = resolved.get(context)
  if (services === undefined) {
    services = {
      settings: Context.get(context, Settings),
      audit: Context.get(context, AuditLog),
      limiter: Context.get(context, RateLimiter),
      bus: Context.get(context, EventBus),
      hub: Context.get(context, Hub),
      care: Context.get(context, CareRelationships),
      sessions: Context.get(context, Sessions),
      deadlines: Context.get(context, Deadlines)
    }
    resolved.set(context, services)
  }
  return services
}
