// Readiness of the backing services behind this node's interpreters (`/readyz`).
import { Context, type Effect } from "effect"

export class Health extends Context.Service<Health, {
  /** True when every backing service answers. */
  readonly ready: Effect.Effect<boolean>
}>()("tidings/Health") {}
