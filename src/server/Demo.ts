// Dev mode only: the client demo at /demo/ (a page, its script, and @tidings/client's IIFE
// build, bundled from client/src on first request). Served with a CSP that allows exactly
// what the page does: its own scripts, and fetch and wss:// to this origin.
import type { ServerResponse } from "node:http"
import { readFileSync } from "node:fs"

export const DEMO_CSP =
  "default-src 'none'; script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const here = (path: string) => new URL(path, import.meta.url)

/** Bundles the client once, with esbuild (a devDependency: dev mode only, never in a production image). */
const bundleClient = async (): Promise<string> => {
  const { build } = await import("esbuild")
  const built = await build({
    entryPoints: [here("../../client/src/index.ts").pathname],
    bundle: true, minify: true, format: "iife", globalName: "Tidings", write: false, logLevel: "error"
  })
  return built.outputFiles[0]!.text
}

export const makeDemo = () => {
  let client: Promise<string> | undefined
  const files: Record<string, { readonly type: string; readonly body: () => Promise<string> }> = {
    "/demo/": { type: "text/html; charset=utf-8", body: async () => readFileSync(here("./demo/index.html"), "utf8") },
    "/demo/demo.js": { type: "text/javascript; charset=utf-8", body: async () => readFileSync(here("./demo/demo.js"), "utf8") },
    "/demo/tidings-client.js": { type: "text/javascript; charset=utf-8", body: () => (client ??= bundleClient()) }
  }
  /** Answers a GET under /demo/; false when the path is not the demo's. */
  return (path: string, res: ServerResponse): boolean => {
    const file = files[path]
    if (file === undefined) return false
    res.setHeader("content-security-policy", DEMO_CSP)
    void file.body().then(
      (body) => {
        res.writeHead(200, { "content-type": file.type, "content-length": Buffer.byteLength(body) })
        res.end(body)
      },
      () => {
        res.writeHead(500, { "content-type": "application/json" })
        res.end(JSON.stringify({ error: "internal" }))
      }
    )
    return true
  }
}
