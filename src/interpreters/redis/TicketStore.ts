// Single-use tickets on Redis: SET NX with the ticket's TTL when issued, GETDEL when consumed,
// so exactly one consume succeeds across every node. The key is in its subject's slot, where
// the session's opening script (Sessions.ts) deletes it in the same way; it names the jti by
// its pseudonym.
import { Duration, Effect, Layer } from "effect"
import { TicketStore } from "../../services/TicketStore.ts"
import { attempt, RedisClient } from "./Client.ts"
import { DataKeys } from "./DataKey.ts"
import { named } from "./Keys.ts"

export const layer = Layer.effect(
  TicketStore,
  Effect.gen(function*() {
    const redis = (yield* RedisClient).commands
    const call = attempt("ticket-store")
    const keys = named((yield* DataKeys).name)
    return TicketStore.of({
      put: (subject, jti, ttl) =>
        call(() => redis.set(keys.subject(subject).ticket(jti), "1", "PX", Math.max(1, Duration.toMillis(ttl)), "NX")).pipe(Effect.asVoid),
      take: (subject, jti) => call(() => redis.getdel(keys.subject(subject).ticket(jti))).pipe(Effect.map((value) => value !== null))
    })
  })
)
