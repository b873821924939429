// The program test bed: every service on its memory interpreter, a fresh ticket key, the
// dev issuer, and the hub, with settings a test may override.
import { Effect, Layer } from "effect"
import * as DevIssuer from "../../src/interpreters/jwt/DevIssuer.ts"
import * as SigningKeys from "../../src/interpreters/jwt/SigningKeys.ts"
import * as TicketSigner from "../../src/interpreters/jwt/TicketSigner.ts"
import * as Memory from "../../src/interpreters/memory/Memory.ts"
import * as Deadlines from "../../src/programs/Deadlines.ts"
import * as Hub from "../../src/programs/Hub.ts"
import { CareWatcher } from "../../src/programs/Care.ts"
import * as Settings from "../../src/services/Settings.ts"
import { CareRelationships } from "../../src/services/CareRelationships.ts"

const keys = Layer.unwrap(Effect.promise(async () => {
  const [ticketKey, issuerKey] = await Promise.all([SigningKeys.generate(), SigningKeys.generate()])
  return Layer.mergeAll(TicketSigner.layer(ticketKey), DevIssuer.layer(issuerKey))
}))

/** Care relationships whose change announcements are lost, as a dropped cross-node message would be. */
const quietCare = Layer.effect(
  CareRelationships,
  Effect.map(CareRelationships, (care: CareRelationships["Service"]) => CareRelationships.of({ ...care, onChanged: () => Effect.void }))
)

export const memoryLayer = (
  overrides: Partial<Settings.SettingsShape> = {},
  options: {
    readonly careAnnouncements?: boolean
    /** Wraps the care relationships every program sees (a test that holds an answer back). */
    readonly care?: Layer.Layer<CareRelationships, never, CareRelationships>
  } = {}
) => {
  const memory = Memory.layer().pipe(Layer.provideMerge(Settings.layer(overrides)))
  const quiet = options.careAnnouncements === false ? quietCare.pipe(Layer.provideMerge(memory)) : memory
  const services = options.care === undefined ? quiet : options.care.pipe(Layer.provideMerge(quiet))
  return Layer.mergeAll(Hub.layer, Deadlines.layer, CareWatcher).pipe(Layer.provideMerge(services), Layer.provideMerge(keys))
}
