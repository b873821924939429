// Readiness of the backing services behind this node's interpreters (`/readyz`).
import { Context, type Effect } from "effect"

export class Health extends Context.Service<Health, {
  /**
   * True when every backing service answers, and this node hears what other nodes announce
   * (revocations, care changes): a node deaf to them must take no new work.
   */
  readonly ready: Effect.Effect<boolean>
}>()("tidings/Health") {}
