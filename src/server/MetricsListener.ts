// The internal metrics listener: plain HTTP on TIDINGS_METRICS_LISTEN (loopback by default),
// apart from the public TLS listener so that scrapes never cross the public edge. It serves
// `GET /metrics` in the Prometheus text format and 404 for everything else.
import { Effect, Layer } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { Health } from "../services/Health.ts"

export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

export const layer = (listen: { readonly host: string; readonly port: number }) =>
  Layer.effectDiscard(Effect.gen(function*() {
    // The registry is read through this context: the process-global one unless the app was
    // given another.
    const context = yield* Effect.context<never>()
    const health = yield* Health
    const server = createServer({ keepAliveTimeout: 5_000, headersTimeout: 10_000, requestTimeout: 15_000 }, (req, res) => {
      req.resume()
      const path = (req.url ?? "/").split("?", 1)[0]
      if (req.method === "GET" && path === "/metrics") {
        // Health gauges (Redis) are refreshed by a check, so each scrape sees the present.
        void Effect.runPromiseWith(context)(health.ready).then(() => {
          const body = PrometheusMetrics.formatUnsafe(context)
          res.writeHead(200, { "content-type": CONTENT_TYPE, "content-length": Buffer.byteLength(body), "cache-control": "no-store" })
          res.end(body)
        })
        return
      }
      res.writeHead(404, { "content-length": 0 })
      res.end()
    })

    const bound = yield* Effect.acquireRelease(
      Effect.callback<boolean>((resume) => {
        // A busy or forbidden metrics address must not keep the gateway from serving
        // notifications: it is logged, and the gateway runs without the listener.
        server.once("error", () => resume(Effect.succeed(false)))
        server.listen(listen.port, listen.host, () => resume(Effect.succeed(true)))
      }),
      (bound) =>
        bound
          ? Effect.callback<void>((resume) => {
            server.close(() => resume(Effect.void))
            server.closeAllConnections()
          })
          : Effect.void
    )
    if (bound) {
      const address = server.address() as AddressInfo
      yield* Effect.logInfo("metrics listening").pipe(Effect.annotateLogs({ host: address.address, port: address.port }))
    } else {
      yield* Effect.logError("metrics listener could not bind; running without it").pipe(
        Effect.annotateLogs({ host: listen.host, port: listen.port })
      )
    }
  }))
