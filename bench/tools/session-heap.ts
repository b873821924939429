// JS heap per idle session, in process: N sessions opened on the memory interpreters (each
// subscribed to its own channel, then left alone), measured against the heap before them,
// both after a full GC. No sockets and no TLS: what the session engine itself holds.
//   node --expose-gc bench/tools/session-heap.ts [N=5000] [snapshot-dir]
// With a directory, also writes before/after heap snapshots there for heapsnapshot-diff.ts.
import { Effect, Layer } from "effect"
import { writeHeapSnapshot } from "node:v8"
import * as DevIssuer from "../../src/interpreters/jwt/DevIssuer.ts"
import * as SigningKeys from "../../src/interpreters/jwt/SigningKeys.ts"
import * as TicketSigner from "../../src/interpreters/jwt/TicketSigner.ts"
import * as Memory from "../../src/interpreters/memory/Memory.ts"
import { ClosedNormally } from "../../src/domain/Errors.ts"
import type { PatientRef } from "../../src/domain/Ref.ts"
import { CareWatcher } from "../../src/programs/Care.ts"
import * as Tickets from "../../src/programs/Tickets.ts"
import { AuditLog } from "../../src/services/AuditLog.ts"
import * as Settings from "../../src/services/Settings.ts"
import * as Deadlines from "../../src/programs/Deadlines.ts"
import * as Hub from "../../src/programs/Hub.ts"
import * as Session from "../../src/programs/Session.ts"

const n = Number(process.argv[2] ?? 5_000)
const snapshots = process.argv[3]
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) {
  process.stderr.write("run with node --expose-gc\n")
  process.exit(64)
}

const unlimited = { scope: "connect" as const, limit: 1_000_000_000, windowMs: 1_000 }
// Audit records would be counted per session otherwise; in production they go to the sink.
const discardAudit = Layer.succeed(AuditLog, AuditLog.of({ append: () => Effect.void, commit: () => Effect.void, ready: Effect.succeed(true) }))

const layer = Layer.unwrap(Effect.promise(async () => {
  const [ticketKey, issuerKey] = await Promise.all([SigningKeys.generate(), SigningKeys.generate()])
  const settings = Settings.layer({
    rates: { ...Settings.defaults.rates, connectsPerIp: unlimited, connectsPerSubject: unlimited, tickets: unlimited, ticketsPerIp: unlimited }
  })
  const services = Layer.mergeAll(Memory.layer(), discardAudit).pipe(Layer.provideMerge(settings))
  return Layer.mergeAll(perNode, CareWatcher).pipe(
    Layer.provideMerge(services),
    Layer.provideMerge(Layer.mergeAll(TicketSigner.layer(ticketKey), DevIssuer.layer(issuerKey)))
  )
}))

const perNode = Layer.mergeAll(Hub.layer, Deadlines.layer)

/** One session on a fake socket that never sends again, once it has answered its `subscribe`. */
const open = (ticket: string, channel: string) =>
  Effect.gen(function*() {
    let answered: (() => void) | undefined
    let closed: (() => void) | undefined
    const subscribed = new Promise<void>((resolve) => (answered = resolve))
    const ended = new Promise<void>((resolve) => (closed = resolve))
    const transport: Session.Transport = {
      origin: "https://app.example",
      peer: "192.0.2.10",
      ticket,
      outbox: {
        offer: (frame) => {
          if (frame.startsWith('{"type":"subscribed"')) answered?.()
          return true
        }
      },
      closed: () => closed?.()
    }
    const session = yield* Session.start(transport)
    session.receive(JSON.stringify({ type: "subscribe", id: "s1", channel }))
    yield* Effect.promise(() => subscribed)
    answered = undefined
    return { close: Effect.andThen(Effect.sync(() => session.end(new ClosedNormally())), Effect.promise(() => ended)) }
  })

const heapAfterGc = () => {
  for (let i = 0; i < 4; i++) gc()
  return process.memoryUsage().heapUsed
}

const program = Effect.gen(function*() {
  const openMany = (from: number, count: number) =>
    Effect.forEach(Array.from({ length: count }, (_, i) => from + i), (i) =>
      Effect.gen(function*() {
        const ref = `pt_${String(i).padStart(9, "0")}` as PatientRef
        const { ticket } = yield* Tickets.issue({ principal: { _tag: "Patient", ref }, expiresAt: Math.floor(Date.now() / 1000) + 3_600, issuedAt: 0 })
        return yield* open(ticket, `patient:${ref}`)
      }), { concurrency: 64 })
  // Warm-up: code paths compiled, metric series made, maps grown, then all closed.
  const warm = yield* openMany(10_000_000, 500)
  for (const session of warm) yield* session.close
  const before = heapAfterGc()
  if (snapshots !== undefined) writeHeapSnapshot(`${snapshots}/before.heapsnapshot`)
  const sessions = yield* openMany(0, n)
  const after = heapAfterGc()
  if (snapshots !== undefined) writeHeapSnapshot(`${snapshots}/after.heapsnapshot`)
  const perSession = (after - before) / n
  process.stdout.write(`${n} idle sessions (one subscription each): ${(perSession / 1024).toFixed(2)} KiB of JS heap per session\n`)
  for (const session of sessions) yield* session.close
})

Effect.runPromise(Effect.scoped(Effect.provide(program, layer))).then(() => process.exit(0), (error) => {
  process.stderr.write(`${String(error)}\n`)
  process.exit(1)
})
