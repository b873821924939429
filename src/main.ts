// Starts Tidings: parse the settings and check the files they name (one line and exit 78 on a
// problem), take the data directory for this process (exit 75 when another holds it), compose
// the layers for the mode, and run until SIGTERM/SIGINT, which closes every socket with 1001.
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit, Layer, Logger, References, Result, type Runtime } from "effect"
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import * as App from "./App.ts"
import * as Config from "./Config.ts"
import { ServerAddress } from "./server/Server.ts"
import * as Startup from "./Startup.ts"

const stop = (problem: Startup.StartProblem): never => {
  process.stderr.write(`tidings: ${problem.line}\n`)
  return process.exit(problem.code)
}

const parsed = Config.parse(process.env)
if (Result.isFailure(parsed)) stop({ code: Startup.EXIT.config, line: `${parsed.failure.setting} ${parsed.failure.problem}` })
const config = (parsed as Result.Success<Config.AppConfig, Config.ConfigProblem>).success
const unreadable = Startup.checkFiles(config)
if (unreadable !== undefined) stop(unreadable)

// Nothing is written before these locks are held: a second start in the same directory must
// not touch the running node's certificate or audit chain.
const take = (directory: string, name: string, what: string) => {
  try {
    mkdirSync(directory, { recursive: true, mode: 0o700 })
    if (Startup.lock(directory, name)) return
  } catch {
    stop({ code: Startup.EXIT.config, line: `${what} cannot be written` })
  }
  stop({ code: Startup.EXIT.inUse, line: `${what} is in use by another Tidings process (already running?)` })
}
if (config.tls._tag === "SelfSigned") take(dirname(App.DEV_CERT_FILE), "tidings.lock", "the data directory .data")
if (config.auditSink._tag === "File") {
  take(config.auditSink.directory, `.lock-${config.settings.nodeId}`, "TIDINGS_AUDIT_SINK (this node's audit files)")
}

const Announce = Layer.effectDiscard(Effect.gen(function*() {
  const address = yield* ServerAddress
  yield* Effect.logInfo("listening").pipe(
    Effect.annotateLogs({ mode: config.mode, host: address.host, port: address.port })
  )
  yield* Effect.addFinalizer(() => Effect.logInfo("shutting down"))
}))

const Logging = Layer.mergeAll(
  Logger.layer([Logger.consoleJson]),
  Layer.succeed(References.MinimumLogLevel, config.logLevel)
)

// An interrupted main (SIGTERM) is a clean stop: exit 0, not 130.
const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : onExit(Exit.isSuccess(exit) ? 0 : 1)

const redisSetting = config.redisCluster === undefined ? "TIDINGS_REDIS_URL" : "TIDINGS_REDIS_CLUSTER"

Layer.launch(Announce.pipe(Layer.provideMerge(App.layer(config, { devCertFile: App.DEV_CERT_FILE })), Layer.provide(Logging))).pipe(
  Effect.catchTag("RedisUnreachable", (error) =>
    Effect.sync(() =>
      stop(
        error.reason === "refused"
          ? { code: Startup.EXIT.config, line: "TIDINGS_REDIS_PASSWORD_FILE (or the URL's user) was refused by Redis" }
          : error.reason === "untrusted"
          // 69 like an outage (the service cannot be used as it is), worded so the fix is found.
          ? { code: Startup.EXIT.unavailable, line: `${redisSetting} presented a certificate that is not trusted (TIDINGS_REDIS_CA_FILE)` }
          : { code: Startup.EXIT.unavailable, line: `${redisSetting} does not answer` }
      )
    )),
  Effect.catch((error) =>
    Effect.suspend(() => {
      const inUse = Startup.portInUse(error, config)
      return inUse === undefined ? Effect.fail(error) : Effect.sync(() => stop(inUse))
    })),
  NodeRuntime.runMain({ teardown })
)
