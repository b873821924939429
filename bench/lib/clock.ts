// One clock for every bench process: CLOCK_MONOTONIC (process.hrtime), which on Linux is the
// same clock in every process of the machine, so a timestamp taken by the publisher process
// and one taken by the client process subtract to a latency. Microseconds, as a number.
export const nowUs = (): number => Number(process.hrtime.bigint() / 1000n)

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
