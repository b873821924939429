// The Redis ACL users Tidings needs, least privilege, as docs/OPERATIONS.md prints them (a test
// checks that the docs show exactly these, and the Redis suites connect as these users). A
// command added to an interpreter, to a Lua script (Redis checks a script's commands against
// the user that runs it) or sent by ioredis must be added here, or every suite fails NOPERM.

/**
 * The gateway's commands, by where they are sent:
 * - ioredis on connect: HELLO (with AUTH: both always allowed, named for the reader), INFO (its
 *   ready check: is the dataset still loading); CLUSTER SLOTS and INFO, and ASKING during a
 *   slot migration, on a cluster. QUIT needs no grant;
 * - health and pub/sub: PING, SUBSCRIBE and PUBLISH (`tdg:control`), SSUBSCRIBE and SUNSUBSCRIBE
 *   (channels' events), SPUBLISH (in the publish script);
 * - scripts (EVALSHA, EVAL when Redis lost the script) and what they call;
 * - plain commands: tickets (SET, GETDEL), sessions, care relationships, revocations, and the
 *   audit sink (MULTI/EXEC of XADD, XREVRANGE for the chain's head);
 * - the scripts' own: history retention (LINDEX, RPOP, PTTL), care relationships (HGETALL,
 *   HDEL), storage quotas (HINCRBY, HMGET), the data key's key-check (SET NX GET).
 */
const GATEWAY_COMMANDS = [
  "hello", "auth", "info", "ping", "cluster|slots", "cluster|info", "asking",
  "subscribe", "publish", "ssubscribe", "sunsubscribe", "spublish",
  "evalsha", "eval", "multi", "exec",
  "get", "set", "getdel", "incr",
  "expire", "pexpire", "persist", "pttl",
  "lpush", "ltrim", "lrange", "lindex", "rpop",
  "hget", "hset", "hmget", "hdel", "hgetall", "hincrby",
  "zadd", "zcard", "zrem", "zremrangebyscore",
  "xadd", "xrevrange"
] as const

/** What `tidings audit verify --redis` and `tidings audit archive` send, on the audit streams only. */
const ARCHIVIST_COMMANDS = ["hello", "auth", "info", "ping", "xlen", "xrange", "xtrim"] as const

const grants = (commands: ReadonlyArray<string>) => commands.map((command) => `+${command}`).join(" ")

export interface AclUser {
  readonly name: string
  /**
   * The rules after the password. `reset` (in `rulesFor`) first: it is resetpass, resetkeys,
   * resetchannels, -@all and off, so the line defines the whole user whatever it held before
   * (ACL SETUSER otherwise adds to a user's grants).
   */
  readonly rules: string
}

/** The gateway: keys and pub/sub channels under `tdg:` only, and only the commands above. */
export const GATEWAY: AclUser = { name: "tidings", rules: `~tdg:* &tdg:* -@all ${grants(GATEWAY_COMMANDS)}` }

/** The operator's audit CLI: the nodes' audit streams (`tdg:audit:{<node>}`), no pub/sub. */
export const ARCHIVIST: AclUser = { name: "tidings-audit", rules: `~tdg:audit:* -@all ${grants(ARCHIVIST_COMMANDS)}` }

/** A user's rules with its password (`>secret`, or `#<sha256 hex>` in an aclfile), as `ACL SETUSER <name>` takes them. */
export const rulesFor = (user: AclUser, passwordRule: string) => `reset on ${passwordRule} ${user.rules}`
