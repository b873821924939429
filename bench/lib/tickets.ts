// POST /v1/tickets as a load client sends it: one place for the request, so the workers that
// open sessions (clients.ts, storm.ts) differ only in what they count and how they retry.
import { type Agent, request } from "node:https"

/** Where a Tidings node listens. */
export interface TicketTarget {
  readonly host: string
  readonly port: number
}

/** The answer's status and body; a network error (or the timeout, code "timeout") rejects. */
export const postTicket = (
  target: TicketTarget,
  token: string,
  agent: Agent,
  timeoutMs?: number
): Promise<{ readonly status: number; readonly body: string }> =>
  new Promise((resolve, reject) => {
    const req = request({
      host: target.host, port: target.port, method: "POST", path: "/v1/tickets", agent,
      ...(timeoutMs === undefined ? {} : { timeout: timeoutMs }),
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "content-length": "2" }
    }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (body += chunk))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "timeout" })))
    req.on("error", reject)
    req.end("{}")
  })
