// A request's body as the routes take it: at most a route's limit of bytes (declared or as
// read), and only when sent as JSON. Anything else is refused by server/Http.ts before any work.
import type { IncomingMessage } from "node:http"

export const isJson = (contentType: string | undefined) =>
  contentType !== undefined && /^application\/json\s*(;\s*charset=utf-8\s*)?$/i.test(contentType)

/** Reads at most `limit` bytes; undefined when the body is larger. */
export const readBody = (req: IncomingMessage, limit: number): Promise<string | undefined> =>
  new Promise((resolve) => {
    const declared = Number(req.headers["content-length"] ?? 0)
    if (declared > limit) return resolve(undefined)
    const chunks: Array<Buffer> = []
    let size = 0
    req.on("data", (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        req.removeAllListeners("data")
        return resolve(undefined)
      }
      chunks.push(chunk)
    })
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    req.on("error", () => resolve(undefined))
  })
