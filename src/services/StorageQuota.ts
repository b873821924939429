// How much one publishing service may keep stored: bytes of history and channels begun over
// the last 24 hours (domain/Quota.ts), so one service cannot grow the store without bound.
// Checking costs no round trip: it is decided from what the node last learned of the totals.
import { Context, type Effect } from "effect"
import type { RateLimited } from "../domain/Errors.ts"

export class StorageQuota extends Context.Service<StorageQuota, {
  /**
   * Fails with RateLimited (scope `storage`, retry when the window's oldest hour leaves it) while
   * the service's usage over the last 24 h is at its quota. On Redis the usage is the cluster's
   * as of the last second plus this node's since: every node may overshoot by a second's worth.
   */
  readonly check: (service: string) => Effect.Effect<void, RateLimited>
  /** Counts what one accepted event stored: its bytes, and whether it began its channel. */
  readonly charge: (service: string, bytes: number, newChannel: boolean) => Effect.Effect<void>
}>()("tidings/StorageQuota") {}
