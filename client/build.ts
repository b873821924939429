// Builds @tidings/client into client/dist (or another directory, for tests): a minified ESM
// module with its .d.ts, and an IIFE for a <script> tag (global `Tidings`). The gateway's
// close table (src/domain/Close.ts) is bundled in, so client and server can never disagree.
import { build } from "esbuild"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"

const ROOT = import.meta.dirname
export const ENTRY = join(ROOT, "src/index.ts")
export const DIST = join(ROOT, "dist")

// The values index.ts exports, declared over the types of types.ts (kept in step by typecheck: index.ts implements them).
const DECLARATIONS = `
/** Throw from getTicket with the HTTP status of a refused \`POST /v1/tickets\`. */
export declare class TicketError extends Error {
  readonly status: number
  constructor(status: number)
}
export declare const createClient: (options: ClientOptions) => Client
/** Opt-in: markActive() on pointerdown, keydown and the page becoming visible; returns the detach function. */
export declare const watchActivity: (client: Pick<Client, "markActive">, target?: EventTarget) => () => void
`

export interface Built {
  readonly esm: string
  readonly iife: string
  readonly dts: string
}

export const buildClient = async (outdir: string = DIST): Promise<Built> => {
  mkdirSync(outdir, { recursive: true })
  const common = {
    entryPoints: [ENTRY],
    bundle: true,
    minify: true,
    target: ["es2022"],
    platform: "neutral" as const,
    legalComments: "none" as const,
    logLevel: "error" as const
  }
  const esm = join(outdir, "tidings-client.js")
  const iife = join(outdir, "tidings-client.iife.js")
  await build({ ...common, format: "esm", outfile: esm })
  await build({ ...common, format: "iife", globalName: "Tidings", outfile: iife })
  const dts = join(outdir, "tidings-client.d.ts")
  writeFileSync(dts, readFileSync(join(ROOT, "src/types.ts"), "utf8") + DECLARATIONS)
  return { esm, iife, dts }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === import.meta.filename) {
  const built = await buildClient(process.argv[2] ?? DIST)
  console.log(`built ${built.esm}, ${built.iife}, ${built.dts}`)
}
