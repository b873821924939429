// Starts Tidings: parse the settings (one line and exit 78 on a problem), compose the
// layers for the mode, and run until SIGTERM/SIGINT, which closes every socket with 1001.
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit, Layer, Logger, References, Result, type Runtime } from "effect"
import * as App from "./App.ts"
import * as Config from "./Config.ts"
import { ServerAddress } from "./server/Server.ts"

const stop = (setting: string, problem: string): never => {
  process.stderr.write(`tidings: ${setting} ${problem}\n`)
  return process.exit(Config.EXIT_CONFIG)
}

const parsed = Config.parse(process.env)
if (Result.isFailure(parsed)) stop(parsed.failure.setting, parsed.failure.problem)
const config = (parsed as Result.Success<Config.AppConfig, Config.ConfigProblem>).success

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

/** EX_UNAVAILABLE: a backing service the node cannot start without did not answer. */
const EXIT_UNAVAILABLE = 69

Layer.launch(Announce.pipe(Layer.provideMerge(App.layer(config, { devCertFile: App.DEV_CERT_FILE })), Layer.provide(Logging))).pipe(
  Effect.catchTag("RedisUnreachable", () =>
    Effect.sync(() => {
      process.stderr.write("tidings: TIDINGS_REDIS_URL does not answer\n")
      process.exit(EXIT_UNAVAILABLE)
    })),
  NodeRuntime.runMain({ teardown })
)
