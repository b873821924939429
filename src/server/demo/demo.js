// The dev demo: a patient's token from the dev issuer, a ticket, and @tidings/client listing
// the channel's events live, with every state change and reset. ?ref=<patient ref> picks the patient.
const ref = new URLSearchParams(location.search).get("ref") ?? "pt_alice_0001"
const channel = "patient:" + ref
document.getElementById("channel").textContent = channel

const getTicket = async () => {
  const minted = await fetch("/dev/token", {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ role: "patient", ref })
  })
  if (minted.status !== 200) throw new Tidings.TicketError(minted.status)
  const { accessToken } = await minted.json()
  const issued = await fetch("/v1/tickets", { method: "POST", headers: { authorization: "Bearer " + accessToken } })
  if (issued.status !== 201) throw new Tidings.TicketError(issued.status)
  return (await issued.json()).ticket
}

const add = (list, text) => {
  const item = document.createElement("li")
  item.textContent = text
  document.getElementById(list).prepend(item)
}

const client = Tidings.createClient({ url: "wss://" + location.host + "/v1/ws", getTicket, storage: sessionStorage })
Tidings.watchActivity(client)
client.on("state", (state, detail) => {
  document.getElementById("state").textContent = state
  add("log", `${new Date().toLocaleTimeString()} ${state}` + (detail ? ` (close ${detail.code}, ${detail.action}${detail.cause ? ", " + detail.cause : ""})` : ""))
})
client.subscribe(channel, {
  onEvent: (e) => add("events", `#${e.seq} ${e.kind} ${e.ref} at ${e.at}`),
  onReset: (r) => add("log", `reset (${r.reason}): refetch everything; live from #${r.seq + 1}`),
  onError: (code) => add("log", "error: " + code)
})
