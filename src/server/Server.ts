// The one listener: an HTTPS server we own, with the routes on 'request' and the WebSocket
// gate on 'upgrade' (ws in noServer mode, so outbound backpressure stays visible), a session
// per socket (a state object, no fiber at rest), and one node-wide heartbeat. Closing the layer closes every socket 1001.
import { Cause, Context, Effect, Exit, Layer, LogLevel, References } from "effect"
import { createServer } from "node:https"
import type { AddressInfo } from "node:net"
import { WebSocketServer } from "ws"
import { closeFor } from "../domain/Close.ts"
import { FRAME_BYTES, PONG_TIMEOUT_S, SUBPROTOCOL } from "../domain/Limits.ts"
import * as Ids from "../programs/Ids.ts"
import * as Metrics from "../programs/Metrics.ts"
import { Refusals } from "../programs/Refusals.ts"
import * as Session from "../programs/Session.ts"
import * as Connection from "./Connection.ts"
import * as Headers from "./Headers.ts"
import * as Http from "./Http.ts"
import * as Tls from "./Tls.ts"
import * as Upgrade from "./Upgrade.ts"

export interface ServerOptions {
  readonly host: string
  readonly port: number
  readonly tls: Tls.TlsMaterial
  /** Where the certificate came from, to reload it on SIGHUP or when the files change. */
  readonly certificate?: { readonly certFile: string; readonly keyFile: string } | undefined
  /** CA of the services' client certificates (TIDINGS_TLS_CLIENT_CA), if services must show one. */
  readonly clientCa?: string | undefined
  /** Session ticket keys shared by the nodes (TIDINGS_TLS_RESUMPTION_KEY_FILE), or random per start. */
  readonly ticketKeys?: Buffer | undefined
  readonly dev: boolean
  readonly allowedOrigins: ReadonlySet<string>
  readonly heartbeatS: number
  readonly window: Connection.WindowLimits
  readonly connection: {
    readonly handshakeTimeoutS: number
    readonly headersTimeoutS: number
    readonly headerBytes: number
    readonly bodyBytes: number
  }
}

export class ServerAddress extends Context.Service<ServerAddress, { readonly host: string; readonly port: number }>()(
  "tidings/ServerAddress"
) {}

/** Connections the kernel may queue before the node accepts them. */
const LISTEN_BACKLOG = 4096

const logDefect = (cause: Cause.Cause<unknown>) =>
  Effect.logError("defect").pipe(
    // Only the error's name and stack frames: its message could hold caller input.
    Effect.annotateLogs({
      error: Cause.squash(cause) instanceof Error ? (Cause.squash(cause) as Error).name : "unknown",
      stack: Cause.squash(cause) instanceof Error
        ? ((Cause.squash(cause) as Error).stack ?? "").split("\n").slice(1, 8).join("\n")
        : ""
    })
  )

/** How many parts the heartbeat interval is cut into (one tick per part). */
const HEARTBEAT_SLICES = 25

export const layer = (options: ServerOptions) =>
  Layer.effect(
    ServerAddress,
    Effect.gen(function*() {
      const context = yield* Effect.context<Session.Requirements | Http.Requirements>()
      const runPromiseExit = Effect.runPromiseExitWith(context)
      const runSync = Effect.runSyncWith(context)
      const refusals = yield* Refusals
      // Every series an alert reads exists at 0 before its first event (programs/Metrics.ts).
      yield* Metrics.initialize(options.allowedOrigins)
      const debug = LogLevel.isLessThanOrEqualTo(yield* References.MinimumLogLevel, "Debug")
      const server = createServer({
        ...Tls.serverOptions(options.tls, options.clientCa),
        ...(options.ticketKeys === undefined ? {} : { ticketKeys: options.ticketKeys }),
        // Slow or silent clients hold nothing for long: the TLS handshake, then the request
        // head (an upgrade request too), each have a deadline, checked every second rather
        // than Node's default 30 s.
        handshakeTimeout: options.connection.handshakeTimeoutS * 1000,
        headersTimeout: options.connection.headersTimeoutS * 1000,
        requestTimeout: options.connection.headersTimeoutS * 1000 + 5_000,
        connectionsCheckingInterval: 1_000,
        maxHeaderSize: options.connection.headerBytes,
        keepAliveTimeout: 5_000
      })

      yield* Effect.acquireRelease(
        Effect.callback<void, Error>((resume) => {
          server.once("error", (error) => resume(Effect.fail(error)))
          // A reconnect storm (every client of a restarted node at once) overflowed Node's default
          // accept queue of 511: dropped connects are retried by the kernel only 1, 3, 7… s later
          // (bench S6). The kernel still caps it (net.core.somaxconn).
          server.listen({ port: options.port, host: options.host, backlog: LISTEN_BACKLOG }, () => resume(Effect.void))
        }),
        () =>
          Effect.callback<void>((resume) => {
            server.close(() => resume(Effect.void))
            server.closeIdleConnections()
            // Sockets still finishing their close handshake get a moment, then are cut.
            setTimeout(() => server.closeAllConnections(), 1_000).unref()
          })
      )

      // New handshakes get a replaced certificate; open connections keep theirs.
      if (options.certificate !== undefined) {
        const source = options.certificate
        yield* Effect.acquireRelease(
          Effect.sync(() =>
            Tls.watchCertificate(server, source, (outcome) =>
              runSync(outcome === "reloaded"
                ? Effect.logInfo("certificate reloaded")
                : outcome === "refused"
                ? Effect.logWarning("certificate reload refused: the files do not hold a matching key and certificate")
                : Effect.void), {
              clientCa: options.clientCa
            })
          ),
          (stop) => Effect.sync(stop)
        )
      }

      // Requests Node's parser refuses (a malformed request line, a head over the limit) get
      // Node's status, but with our security headers rather than Node's bare answer.
      server.on("clientError", Headers.onClientError)

      server.on(
        "request",
        Http.makeHandler(
          {
            dev: options.dev,
            allowedOrigins: options.allowedOrigins,
            serviceClientCertificates: options.clientCa !== undefined,
            bodyBytes: options.connection.bodyBytes,
            onDefect: (cause, request) => runSync(logDefect(cause).pipe(Effect.annotateLogs({ request }))),
            // Only at debug: below it the line would be built and dropped on every publish.
            ...(debug
              ? {
                onServed: (request: string, route: string, status: number, ms: number) =>
                  runSync(Effect.logDebug("request").pipe(Effect.annotateLogs({ request, route, status, ms })))
              }
              : {})
          },
          runPromiseExit
        )
      )

      const wss = yield* Effect.acquireRelease(
        Effect.sync(() =>
          new WebSocketServer({
            noServer: true,
            maxPayload: FRAME_BYTES,
            perMessageDeflate: false,
            clientTracking: false,
            WebSocket: Connection.GatewaySocket,
            handleProtocols: () => SUBPROTOCOL
          })
        ),
        (wss) => Effect.callback<void>((resume) => wss.close(() => resume(Effect.void)))
      )

      const connections = new Set<Connection.Connection>()
      const startSession = Session.starter(context as Context.Context<Session.Requirements>)
      // Set while shutting down: resolved once the last session has closed (and been audited).
      let drained: (() => void) | undefined

      // Log lines of one socket carry its connection id (never its subject or ticket).
      const ids = Ids.correlation("c")
      // Shared by every session: per-session closures are memory an idle socket holds for hours.
      const onClosed: Connection.OnClosed = (connection, error, exit) => {
        connections.delete(connection)
        connection.finish()
        const close = closeFor(error)
        connection.closeWith(close.code, close.reason)
        runSync(Effect.andThen(
          Effect.logDebug("session closed").pipe(Effect.annotateLogs({ code: close.code, cause: error._tag })),
          error._tag === "InternalError" && Exit.isFailure(exit) ? logDefect(exit.cause) : Effect.void
        ).pipe(Effect.annotateLogs("connection", connection.id)))
        if (connections.size === 0) drained?.()
      }
      const onOpened = (startedAt: number) => Metrics.handshakeDuration.updateUnsafe(performance.now() - startedAt, context)

      // Before the ws server closes: every session ends 1001 and is audited. Sessions hold no
      // fiber, so nothing else would end them.
      yield* Effect.addFinalizer(() =>
        Effect.callback<void>((resume) => {
          if (connections.size === 0) return resume(Effect.void)
          drained = () => resume(Effect.void)
          for (const connection of [...connections]) connection.shutDown()
        })
      )

      server.on(
        "upgrade",
        Upgrade.makeHandler({
          allowedOrigins: options.allowedOrigins,
          wss,
          onAccepted: (accepted) => {
            const connection = new Connection.Connection(accepted.ws, {
              origin: accepted.origin,
              peer: accepted.peer,
              ticket: accepted.ticket,
              window: options.window,
              startedAt: accepted.startedAt,
              onOpened,
              onClosed,
              id: ids()
            })
            connections.add(connection)
            // The session runs by itself from here: no fiber waits on it while it is idle.
            connection.attach(startSession(connection))
          },
          onRejected: (reason, origin, peer) =>
            runSync(Effect.andThen(
              // Upgrade passes an origin only once it is on the allowlist; Metrics checks again.
              Effect.andThen(Metrics.connected("refused"), Metrics.upgradeRejected(reason, origin, options.allowedOrigins)),
              // Aggregated per address: a flood of refused upgrades is one record with a count.
              refusals.refused({ event: "ws.rejected", cause: reason, peer, origin })
            ))
        })
      )

      // One timer for every socket. The heartbeat interval is cut into slices and each socket
      // belongs to one, so a node with 100,000 sockets pings a 25th of them each second instead
      // of all at once (which stalled the event loop for a second). Each tick also cuts the
      // sockets whose ping has gone unanswered for PONG_TIMEOUT_S.
      const slices = Math.max(1, Math.min(HEARTBEAT_SLICES, options.heartbeatS * 10))
      let tick = 0
      yield* Effect.acquireRelease(
        Effect.sync(() =>
          setInterval(() => {
            const now = Date.now()
            const slice = tick++ % slices
            const deadline = now - PONG_TIMEOUT_S * 1000
            for (const connection of connections) {
              if (connection.awaitingPongSince !== undefined) {
                if (connection.awaitingPongSince <= deadline) connection.terminate()
              } else if (connection.slice % slices === slice) {
                connection.awaitingPongSince = now
                connection.ping()
              }
            }
          }, (options.heartbeatS * 1000) / slices)
        ),
        (timer) => Effect.sync(() => clearInterval(timer))
      )

      const address = server.address() as AddressInfo
      return { host: address.address, port: address.port }
    })
  )
