// Free loopback ports, and the loopback source addresses client sockets are spread over.
export { freePort } from "../../test/support/net.ts"

/**
 * 127.0.0.2 … : all of 127/8 is loopback on Linux. Each source address has its own ~28k
 * ephemeral ports, so many connections (and the TIME_WAIT left by churn) never run out.
 */
export const sourceAddress = (i: number, spread: number): string => {
  const n = i % spread
  return `127.0.${Math.floor(n / 250)}.${(n % 250) + 2}`
}
