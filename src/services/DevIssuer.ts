// Dev mode's stand-in for the hospital's OAuth issuer (`POST /dev/token`): mints access
// tokens with the role's scopes. Never present in production.
import { Context, type Effect } from "effect"
import type { Role } from "../domain/Principal.ts"

export const scopesFor = (role: Role): ReadonlyArray<string> =>
  role === "service" ? ["events:publish", "relationships:write"] : role === "admin" ? ["sessions:revoke"] : []

export class DevIssuer extends Context.Service<DevIssuer, {
  readonly mint: (role: Role, ref: string) => Effect.Effect<string>
}>()("tidings/DevIssuer") {}
