// Single-use tickets on Redis: SET NX with the ticket's TTL when issued, GETDEL when consumed,
// so exactly one consume succeeds across every node.
import { Duration, Effect, Layer } from "effect"
import { Unavailable } from "../../domain/Errors.ts"
import { TicketStore } from "../../services/TicketStore.ts"
import { RedisClient } from "./Client.ts"
import { Keys } from "./Keys.ts"

export const layer = Layer.effect(
  TicketStore,
  Effect.gen(function*() {
    const redis = (yield* RedisClient).commands
    const call = <A>(run: () => Promise<A>) =>
      Effect.tryPromise({ try: run, catch: () => new Unavailable({ service: "ticket-store" }) })
    return TicketStore.of({
      put: (jti, ttl) =>
        call(() => redis.set(Keys.ticket(jti), "1", "PX", Math.max(1, Duration.toMillis(ttl)), "NX")).pipe(Effect.asVoid),
      take: (jti) => call(() => redis.getdel(Keys.ticket(jti))).pipe(Effect.map((value) => value !== null))
    })
  })
)
