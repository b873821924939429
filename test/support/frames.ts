// The frames a test client has received, and a way to wait for one: shared by every client
// helper, so each only decides how it turns a WebSocket message into a frame.

export interface FrameLog {
  readonly frames: Array<any>
  /** Records a frame and wakes whoever waits for one like it. */
  readonly push: (frame: any) => void
  /** Resolves with the first frame (seen or future) that matches. */
  readonly next: (match: (frame: any) => boolean, timeoutMs?: number) => Promise<any>
}

export const frameLog = (): FrameLog => {
  const frames: Array<any> = []
  const waiters = new Set<{ match: (frame: any) => boolean; resolve: (frame: any) => void }>()
  return {
    frames,
    push: (frame) => {
      frames.push(frame)
      for (const waiter of waiters) {
        if (waiter.match(frame)) {
          waiters.delete(waiter)
          waiter.resolve(frame)
        }
      }
    },
    next: (match, timeoutMs = 5_000) => {
      const seen = frames.find(match)
      if (seen !== undefined) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        const waiter = { match, resolve: (frame: any) => (clearTimeout(timer), resolve(frame)) }
        const timer = setTimeout(() => {
          waiters.delete(waiter)
          reject(new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(frames.slice(-5))}`))
        }, timeoutMs)
        waiters.add(waiter)
      })
    }
  }
}
