// Memory interpreters have no backing service to lose: always ready.
import { Effect, Layer } from "effect"
import { Health } from "../../services/Health.ts"

export const layer = Layer.succeed(Health, Health.of({ ready: Effect.succeed(true) }))
