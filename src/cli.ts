// The operator's command line: `tidings audit verify <file…>` checks an audit trail (one node's
// files, oldest first, or its Redis stream with --redis), `tidings audit hash <ref>` gives the
// pseudonym to search it for. The audit key comes from TIDINGS_AUDIT_KEY_FILE or --key <file>.
// Exit 0 ok, 1 bad, 64 usage.
import { createReadStream, readFileSync } from "node:fs"
import { resolve } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { pseudonymizer } from "./interpreters/audit/Chain.ts"
import { verifier } from "./interpreters/audit/Verify.ts"

const USAGE = "usage: tidings audit verify [--open] [--partial] [--key <file>] <file>...\n" +
  "       tidings audit verify [--open] [--partial] [--key <file>] --redis <url> --node <id>\n" +
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

/** A trail as (source, line number, text) triples: files in the order given, or a node's stream. */
async function* linesOf(args: Array<string>, redisUrl: string | undefined, node: string | undefined): AsyncGenerator<readonly [string, number, string]> {
  if (redisUrl !== undefined && node !== undefined) {
    const { Redis } = await import("ioredis")
    const { Keys } = await import("./interpreters/redis/Keys.ts")
    const { lineOf } = await import("./interpreters/audit/RedisSink.ts")
    const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 })
    await redis.connect()
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
    return
  }
  for (const file of args) {
    let lineNumber = 0
    for await (const text of createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY })) {
      lineNumber += 1
      yield [file, lineNumber, text]
    }
  }
}

const verify = async (args: Array<string>, key: Uint8Array): Promise<number> => {
  const open = flag(args, "--open")
  const partial = flag(args, "--partial")
  const redisUrl = option(args, "--redis")
  const node = option(args, "--node")
  if ((redisUrl === undefined) !== (node === undefined)) return (process.stderr.write(USAGE), 64)
  if (redisUrl === undefined ? args.length === 0 : args.length > 0) return (process.stderr.write(USAGE), 64)
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

export const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  const args = [...argv]
  if (args[0] !== "audit" || (args[1] !== "verify" && args[1] !== "hash")) return (process.stderr.write(USAGE), 64)
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
  return verify(rest, key)
}

// Run when started as a script (`node src/cli.ts …`), not when imported by bin/tidings.mjs.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  process.exitCode = await main(process.argv.slice(2))
}
