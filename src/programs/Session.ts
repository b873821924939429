// One WebSocket session, from ticket to close: consume the ticket, register the session,
// then answer client messages until the socket ends, the session expires or is revoked. The
// parts live in programs/session/: Transport (its socket), Lifecycle (state, open, close),
// Messages (client messages), Subscription (one channel), Access (policy and care re-checks),
// Services (what it needs, resolved once).
export { start, starter } from "./session/Lifecycle.ts"
export type { Requirements } from "./session/Services.ts"
export { endOf, type Inbound, type Interruption, type Outbox, type SessionEnd, type Transport, type TransportEnd } from "./session/Transport.ts"
