// Named limits. Each is a deliberate choice, never a library default left in force
// (`ws` alone would accept 100 MiB frames). Settings in Config.ts override the tunable ones.

/** Largest inbound WebSocket frame; larger closes with 1009. */
export const FRAME_BYTES = 4 * 1024
/** Largest HTTP request body; larger is a 400 before any other work. */
export const BODY_BYTES = 16 * 1024
/** Events in one `POST /v1/events/batch`. */
export const BATCH_EVENTS = 100
/**
 * Largest `POST /v1/events/batch` body. The largest well-formed event is about 380 bytes (a
 * clinician channel, the longest kind, 64-character ref and id), so 100 of them fit in 38 KiB;
 * the rest leaves room for whitespace, and a slow or hostile caller holds at most this much.
 */
export const BATCH_BODY_BYTES = 64 * 1024
/** Largest request head (request line + headers); larger is answered 431. */
export const HEADER_BYTES = 8 * 1024
/** A TLS handshake not done in this time is cut (a slow or silent client holds nothing). */
export const HANDSHAKE_TIMEOUT_S = 10
/** A request (or upgrade request) whose headers are not all in by then is cut (slowloris). */
export const HEADERS_TIMEOUT_S = 10

/** Deepest JSON nesting a body or frame may have (ours need 1). */
export const JSON_DEPTH = 4

export const TICKET_TTL_S = 60
export const TICKET_AUDIENCE = "tidings-ws"
export const SUBPROTOCOL = "tidings.v1"
export const TICKET_PROTOCOL_PREFIX = "ticket."

/** How long a publish `id` is remembered for idempotency. */
export const IDEMPOTENCY_TTL_S = 24 * 60 * 60
/** How long a revocation refuses the subject's older tickets (well past any ticket's life). */
export const REVOCATION_TTL_S = 24 * 60 * 60

/** Channels one socket may hold at once (default of TIDINGS_MAX_SUBSCRIPTIONS_PER_CONNECTION). */
export const SUBSCRIPTIONS_PER_CONNECTION = 64
/** Malformed messages tolerated (each answered `bad_request`) before 4400. */
export const MALFORMED_BEFORE_CLOSE = 3
/** Denied subscriptions tolerated (each answered `forbidden`) before 4403. */
export const DENIALS_BEFORE_CLOSE = 10
/** Rate-limited messages tolerated (each answered `rate_limited`) before 4429. */
export const LIMITED_BEFORE_CLOSE = 10

/** Frames the client may leave unacknowledged (see docs/decisions/0003) before 4508. */
export const OUTBOX_FRAMES = 1024
/** Bytes `ws` may hold for a socket the kernel will not take before 4508. */
export const OUTBOX_BYTES = 1024 * 1024
/** A numbered ping goes out after this many frames, so reading clients keep acknowledging. */
export const ACK_EVERY_FRAMES = 64

export const PONG_TIMEOUT_S = 10
/** Events kept per channel for `since` recovery. */
export const HISTORY_PER_CHANNEL = 100
