// The dev walk-through as a script: get a patient's access token from the dev issuer, trade
// it for a one-time ticket, open the WebSocket, subscribe to the patient's channel once the
// session says `welcome`, and print every frame that arrives, ignoring types it does not know.
// `--publish N` also publishes N events as a service, to self-test.
import { readFileSync } from "node:fs"
import { WebSocket } from "ws"

const base = process.env.TIDINGS_URL ?? "https://localhost:8443"
const caFile = process.env.TIDINGS_CA_FILE ?? ".data/dev-cert.pem"
const readCa = (): string => {
  try {
    return readFileSync(caFile, "utf8")
  } catch {
    // `npm start` writes it when it starts in dev mode: without it there is nothing to talk to.
    process.stderr.write(`demo: no certificate at ${caFile}: is \`npm start\` running in this directory?\n`)
    return process.exit(69)
  }
}
const ca = readCa()
const patient = process.env.TIDINGS_DEMO_PATIENT ?? "pt_alice_0001"
const publishCount = Number(process.argv[process.argv.indexOf("--publish") + 1] ?? 0) || 0
const origin = new URL(base).origin

const post = async (path: string, body: unknown, token?: string): Promise<any> => {
  const { request } = await import("node:https")
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, base), {
      method: "POST",
      ca,
      headers: {
        "content-type": "application/json",
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` })
      }
    }, (res) => {
      let text = ""
      res.on("data", (chunk) => (text += chunk))
      res.on("end", () => (res.statusCode! < 300 ? resolve(text.length > 0 ? JSON.parse(text) : {}) : reject(new Error(`${path}: ${res.statusCode} ${text}`))))
    })
    req.on("error", reject)
    req.end(JSON.stringify(body))
  })
}

const main = async () => {
  const { accessToken } = await post("/dev/token", { role: "patient", ref: patient })
  process.stdout.write(`1. access token for ${patient} from the dev issuer\n`)
  const { ticket, expiresIn } = await post("/v1/tickets", {}, accessToken)
  process.stdout.write(`2. one-time ticket, valid ${expiresIn} s\n`)
  const ws = new WebSocket(new URL("/v1/ws", base.replace(/^https/, "wss")), ["tidings.v1", `ticket.${ticket}`], { ca, origin })
  ws.on("open", () => {
    // Open is not yet authenticated: the ticket is checked after the handshake (a refusal closes 4401).
    process.stdout.write(`3. connected with subprotocol ${ws.protocol}\n`)
  })
  let received = 0
  ws.on("message", async (data) => {
    const frame = JSON.parse(data.toString())
    process.stdout.write(`<- ${data.toString()}\n`)
    // A client acts on the frame types it knows and ignores any other type or field (protocol v1.1).
    switch (frame.type) {
      case "welcome":
        process.stdout.write(`4. session open until ${frame.expiresAt} (idle logoff after ${frame.idleTimeoutS} s)\n`)
        ws.send(JSON.stringify({ type: "subscribe", id: "s1", channel: `patient:${patient}` }))
        return
      case "subscribed":
        if (publishCount === 0) {
          process.stdout.write("5. waiting for events: publish one with the curl commands in the README (Ctrl-C to stop)\n")
          return
        }
        {
          const service = (await post("/dev/token", { role: "service", ref: "svc_scheduling" })).accessToken
          for (let i = 0; i < publishCount; i++) {
            await post("/v1/events", { channel: `patient:${patient}`, kind: "appointment.updated", ref: `apt_demo_${String(i).padStart(4, "0")}` }, service)
          }
        }
        return
      case "event":
        if (++received === publishCount) ws.close(1000)
        return
      case "reset":
        process.stdout.write("   reset: events may have been missed; an app refetches the channel's state from its API\n")
        return
      default:
        return
    }
  })
  ws.on("close", (code, reason) => {
    process.stdout.write(`closed ${code} ${reason.toString()}\n`)
    process.exitCode = publishCount > 0 && received !== publishCount ? 1 : 0
  })
  ws.on("error", (error) => {
    process.stderr.write(`demo: ${error.message}\n`)
    process.exitCode = 1
  })
}

main().catch((error: Error) => {
  process.stderr.write(`demo: ${error.message}\n(is \`npm start\` running?)\n`)
  process.exit(1)
})
