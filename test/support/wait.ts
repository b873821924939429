// Polls an asynchronous condition until it holds, for end-to-end steps that wait on a real
// process or server (readiness, a stream's length). Returns how long it took.
export const until = async (check: () => Promise<boolean>, withinMs: number, what: string): Promise<number> => {
  const started = Date.now()
  while (!(await check())) {
    if (Date.now() - started > withinMs) throw new Error(`not within ${withinMs} ms: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return Date.now() - started
}
