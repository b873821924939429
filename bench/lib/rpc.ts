// Request/answer over a child's IPC channel, plus one-way progress notes from the child.
// Parent side: `Worker`; child side: `serve`. A child exits when its parent goes away.
import { type ChildProcess, fork } from "node:child_process"

interface Request { readonly rpc: number; readonly cmd: string; readonly args: unknown }
interface Answer { readonly rpc: number; readonly ok: boolean; readonly value?: unknown; readonly error?: string }
interface Note { readonly note: unknown }

export class Worker {
  readonly child: ChildProcess
  readonly name: string
  private next = 1
  private pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>()
  onNote: (note: any) => void = () => undefined
  readonly exited: Promise<number | null>

  constructor(name: string, script: string, options: { readonly execArgv?: ReadonlyArray<string>; readonly env?: NodeJS.ProcessEnv } = {}) {
    this.name = name
    this.child = fork(script, [], {
      execArgv: [...(options.execArgv ?? [])],
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    this.child.on("message", (message: Answer | Note) => {
      if ("note" in message) return this.onNote(message.note)
      const waiter = this.pending.get(message.rpc)
      if (waiter === undefined) return
      this.pending.delete(message.rpc)
      if (message.ok) waiter.resolve(message.value)
      else waiter.reject(new Error(`${name}: ${message.error}`))
    })
    this.exited = new Promise((resolve) =>
      this.child.once("exit", (code) => {
        for (const waiter of this.pending.values()) waiter.reject(new Error(`${name} exited (${code})`))
        this.pending.clear()
        resolve(code)
      })
    )
  }

  call<T = any>(cmd: string, args: unknown = {}): Promise<T> {
    const rpc = this.next++
    return new Promise<T>((resolve, reject) => {
      this.pending.set(rpc, { resolve, reject })
      this.child.send({ rpc, cmd, args } satisfies Request, (error) => {
        if (error !== null) {
          this.pending.delete(rpc)
          reject(error)
        }
      })
    })
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.child.kill("SIGTERM")
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 3_000)
    await this.exited
    clearTimeout(timer)
  }
}

export const serve = (handlers: Record<string, (args: any) => unknown>) => {
  if (process.send === undefined) throw new Error("run me through bench/run.ts (no IPC channel)")
  process.on("disconnect", () => process.exit(0))
  process.on("message", async (message: Request) => {
    const handler = handlers[message.cmd]
    try {
      if (handler === undefined) throw new Error(`unknown command ${message.cmd}`)
      const value = await handler(message.args)
      process.send!({ rpc: message.rpc, ok: true, value } satisfies Answer)
    } catch (error) {
      process.send!({ rpc: message.rpc, ok: false, error: error instanceof Error ? error.stack ?? error.message : String(error) } satisfies Answer)
    }
  })
}

export const note = (value: unknown) => {
  process.send?.({ note: value } satisfies Note)
}
