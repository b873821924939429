// The operator's command line: `tidings audit verify <file…>` checks an audit trail (one node's
// files, oldest first, then its Redis stream with --redis), `tidings audit archive` moves the
// oldest part of a node's stream into such files, `tidings audit hash <ref>` gives the
// pseudonym to search it for. The audit key comes from TIDINGS_AUDIT_KEY_FILE or --key <file>.
// Exit 0 ok, 1 bad, 64 usage.
import { createReadStream, readFileSync } from "node:fs"
import { resolve } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { pseudonymizer } from "./interpreters/audit/Chain.ts"
import { verifier } from "./interpreters/audit/Verify.ts"

const USAGE = "usage: tidings audit verify [--open] [--partial] [--key <file>] <file>...\n" +
  "       tidings audit verify [--open] [--partial] [--key <file>] [<archived file>...] --redis <url> --node <id>\n" +
  "       tidings audit archive [--key <file>] [--keep <entries, default 1>] --redis <url> --node <id> --out <dir>\n" +
  "       tidings audit hash [--key <file>] [--peer] <role:ref (a subject or channel), or with --peer an address>\n"

const out = (text: string) => process.stdout.write(text)

const readKey = (args: Array<string>): Uint8Array | undefined => {
  const at = args.indexOf("--key")
  const file = at >= 0 ? args.splice(at, 2)[1] : process.env.TIDINGS_AUDIT_KEY_FILE
  if (file === undefined) return undefined
  const key = readFileSync(file)
  return key.length >= 32 ? key : undefined
}

const flag = (args: Array<string>, name: string): boolean => {
  const at = args.indexOf(name)
  if (at >= 0) args.splice(at, 1)
  return at >= 0
}

const option = (args: Array<string>, name: string): string | undefined => {
  const at = args.indexOf(name)
  return at >= 0 ? args.splice(at, 2)[1] : undefined
}

/**
 * A connection to the Redis of `--redis`, logged in and verified as a node is: its password from
 * TIDINGS_REDIS_PASSWORD_FILE (so it need not be in the URL, and the shell's history), the user
 * the URL names, a rediss:// certificate checked against TIDINGS_REDIS_CA_FILE when set.
 */
const redisAt = async (url: string) => {
  const [{ Redis }, { Redacted }, Client] = await Promise.all([import("ioredis"), import("effect"), import("./interpreters/redis/Client.ts")])
  const file = process.env.TIDINGS_REDIS_PASSWORD_FILE
  const ca = process.env.TIDINGS_REDIS_CA_FILE
  const target = Client.singleOptions({
    _tag: "Single",
    url: Redacted.make(url),
    ...(file === undefined ? {} : { password: Redacted.make(Client.readSecret(file)) }),
    ...(ca === undefined ? {} : { ca: readFileSync(ca, "utf8") })
  })
  const redis = new Redis(target.url, { ...target.options, lazyConnect: true, maxRetriesPerRequest: 1 })
  redis.on("error", () => undefined)
  await redis.connect()
  return redis
}

/** A trail as (source, line number, text) triples: files in the order given, then a node's stream. */
async function* linesOf(args: Array<string>, redisUrl: string | undefined, node: string | undefined): AsyncGenerator<readonly [string, number, string]> {
  for (const file of args) {
    let lineNumber = 0
    for await (const text of createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY })) {
      lineNumber += 1
      yield [file, lineNumber, text]
    }
  }
  if (redisUrl !== undefined && node !== undefined) {
    const { Keys } = await import("./interpreters/redis/Keys.ts")
    const { lineOf } = await import("./interpreters/audit/RedisSink.ts")
    const redis = await redisAt(redisUrl)
    const key = Keys.audit(node)
    try {
      let start = "-"
      let index = 0
      while (true) {
        const page = await redis.xrange(key, start, "+", "COUNT", 10_000)
        for (const [id, fields] of page) {
          index += 1
          yield [`${key}#${id}`, index, lineOf(fields)]
        }
        if (page.length < 10_000) break
        start = `(${page[page.length - 1]![0]}`
      }
    } finally {
      redis.disconnect()
    }
  }
}

const verify = async (args: Array<string>, key: Uint8Array): Promise<number> => {
  const open = flag(args, "--open")
  const partial = flag(args, "--partial")
  const redisUrl = option(args, "--redis")
  const node = option(args, "--node")
  if ((redisUrl === undefined) !== (node === undefined)) return (process.stderr.write(USAGE), 64)
  if (redisUrl === undefined && args.length === 0) return (process.stderr.write(USAGE), 64)
  const check = verifier(key, { partial })
  const started = performance.now()
  for await (const [source, lineNumber, text] of linesOf(args, redisUrl, node)) {
    const bad = check.line(source, lineNumber, text)
    if (bad !== undefined && !bad.ok) {
      out(`BAD ${bad.problem} at seq ${bad.seq ?? "?"} (${bad.file}:${bad.line}) after ${bad.records} good records\n`)
      return 1
    }
  }
  const verdict = check.end(open)
  const seconds = ((performance.now() - started) / 1000).toFixed(2)
  if (!verdict.ok) {
    out(`BAD ${verdict.problem} at seq ${verdict.seq ?? "?"} (${verdict.file}:${verdict.line}) after ${verdict.records} good records\n`)
    return 1
  }
  const from = verdict.from > 1 ? ` from seq ${verdict.from}` : ""
  out(`OK ${verdict.records} records${from} in ${verdict.chains} chain(s), ${verdict.sealed ? "sealed" : "open"}, ${seconds} s\n`)
  // Not a broken chain, but worth a look: the node did not close its trail before that restart.
  for (const seq of verdict.unclean) out(`NOTE restart after an unsealed end at seq ${seq} (a crash, or a cut tail)\n`)
  return 0
}

/** Archives the oldest entries of a node's stream, then trims them (interpreters/audit/Archive.ts). */
const archive = async (args: Array<string>, key: Uint8Array): Promise<number> => {
  const redisUrl = option(args, "--redis")
  const node = option(args, "--node")
  const directory = option(args, "--out")
  const keepText = option(args, "--keep") ?? "1"
  const keep = /^\d{1,12}$/.test(keepText) ? Number(keepText) : 0
  if (redisUrl === undefined || node === undefined || directory === undefined || keep < 1 || args.length > 0) {
    return (process.stderr.write(USAGE), 64)
  }
  const { archive } = await import("./interpreters/audit/Archive.ts")
  const redis = await redisAt(redisUrl).catch(() => undefined)
  if (redis === undefined) return (out("BAD nothing trimmed: Redis refused the connection or did not answer\n"), 1)
  try {
    const result = await archive({ redis, node, directory, key, keep })
    if (!result.ok) return (out(`BAD nothing trimmed: ${result.problem}\n`), 1)
    const archived = result.file === undefined ? "archived nothing new" : `archived ${result.archived} records (seq ${result.from} to ${result.to}) in ${result.file}`
    out(`OK ${archived}, trimmed ${result.trimmed} entries, ${result.left} left in the stream\n`)
    return 0
  } finally {
    redis.disconnect()
  }
}

export const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  const args = [...argv]
  if (args[0] !== "audit" || (args[1] !== "verify" && args[1] !== "hash" && args[1] !== "archive")) return (process.stderr.write(USAGE), 64)
  const command = args[1]
  const rest = args.slice(2)
  const key = readKey(rest)
  if (key === undefined) {
    process.stderr.write("tidings: TIDINGS_AUDIT_KEY_FILE (or --key) must name a file of at least 32 bytes\n")
    return 64
  }
  if (command === "hash") {
    // Addresses of refused callers have pseudonyms of their own (`peer`), under another key.
    const peer = rest[0] === "--peer"
    const value = peer ? rest.slice(1) : rest
    if (value.length !== 1) return (process.stderr.write(USAGE), 64)
    out(`${pseudonymizer(key, peer ? "peer" : "subject")(value[0]!)}\n`)
    return 0
  }
  return command === "archive" ? archive(rest, key) : verify(rest, key)
}

// Run when started as a script (`node src/cli.ts …`), not when imported by bin/tidings.mjs.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  process.exitCode = await main(process.argv.slice(2))
}
