// The tunable limits and policies the programs need, read once from Config.ts at start.
// Programs depend on this instead of the environment, so tests set them directly.
import { Context, Layer } from "effect"
import { DEFAULT_EVENT_KINDS } from "../domain/Event.ts"
import * as Limits from "../domain/Limits.ts"
import type { QuotaRule } from "../domain/Quota.ts"
import type { RateRule } from "./RateLimiter.ts"

export interface SettingsShape {
  /** This node's name in audit records and logs. */
  readonly nodeId: string
  readonly eventKinds: ReadonlySet<string>
  readonly sessionMaxS: number
  readonly idleTimeoutS: number
  readonly maxSessionsPerSubject: number
  readonly maxSubscriptionsPerConnection: number
  readonly outboxFrames: number
  readonly outboxBytes: number
  readonly rates: {
    readonly messages: RateRule
    readonly subscribes: RateRule
    /** Tickets per subject. */
    readonly tickets: RateRule
    readonly ticketsPerIp: RateRule
    readonly connectsPerIp: RateRule
    readonly connectsPerSubject: RateRule
    readonly publishes: RateRule
  }
  /** Each publishing service's storage quota over 24 h. */
  readonly storage: QuotaRule
}

export class Settings extends Context.Service<Settings, SettingsShape>()("tidings/Settings") {}

export const defaults: SettingsShape = {
  nodeId: "node-1",
  eventKinds: new Set(DEFAULT_EVENT_KINDS),
  sessionMaxS: 43_200,
  idleTimeoutS: 900,
  maxSessionsPerSubject: 5,
  maxSubscriptionsPerConnection: Limits.SUBSCRIPTIONS_PER_CONNECTION,
  outboxFrames: Limits.OUTBOX_FRAMES,
  outboxBytes: Limits.OUTBOX_BYTES,
  rates: {
    messages: { scope: "message", limit: 20, windowMs: 1_000 },
    subscribes: { scope: "subscribe", limit: 120, windowMs: 60_000 },
    tickets: { scope: "ticket", limit: 30, windowMs: 60_000 },
    // Per address limits stay generous: a hospital's users often share one NAT address.
    ticketsPerIp: { scope: "ticket", limit: 600, windowMs: 60_000 },
    connectsPerIp: { scope: "connect", limit: 600, windowMs: 60_000 },
    connectsPerSubject: { scope: "connect", limit: 30, windowMs: 60_000 },
    publishes: { scope: "publish", limit: 5_000, windowMs: 1_000 }
  },
  // About 9 million events a day from one service (a few GB of Redis), and a million channels.
  storage: { bytes: 4 * 1024 ** 3, channels: 1_000_000 }
}

export const layer = (overrides: Partial<SettingsShape> = {}) => Layer.succeed(Settings, { ...defaults, ...overrides })
