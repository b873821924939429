// Checks an audit trail as the sinks write it: every record's mac over the previous mac and
// its own JSON, seq counting up by one, prev naming the previous mac, and a seal at the end.
// Reports the first bad record by seq (and line), which is what an auditor needs to look at,
// and every restart that followed a crash (`audit.opened` with cause `unsealed`).
import { chainKey, GENESIS, macFor } from "./Chain.ts"

export type Verdict =
  | {
    readonly ok: true
    readonly records: number
    readonly chains: number
    readonly sealed: boolean
    /** The seq the trail starts at: 1 unless verified `partial` (older files archived away). */
    readonly from: number
    /** Seqs of the restarts after an unsealed end (a crash, or a tail cut before the restart). */
    readonly unclean: ReadonlyArray<number>
  }
  | {
    readonly ok: false
    readonly records: number
    /** The seq the bad record claims (or should have had), and where it is. */
    readonly seq: number | undefined
    readonly file: string
    readonly line: number
    readonly problem: "not json" | "mac" | "seq" | "prev" | "missing tail"
  }

export interface Verifier {
  /** Feeds one line; returns a failure as soon as one is found, else undefined. */
  readonly line: (file: string, lineNumber: number, text: string) => Verdict | undefined
  /** The verdict once every line was fed. `open`: the log may still be written (no seal expected). */
  readonly end: (open: boolean) => Verdict
}

const MAC_ENDING = /,"mac":"([0-9a-f]{64})"\}$/
const SEQ_PREV_ENDING = /,"seq":(\d{1,15}),"prev":"([0-9a-f]{64})"\}$/
const EVENT = /"event":"([a-z.]+)"/
const UNSEALED = /"cause":"unsealed"/

export interface VerifyOptions {
  /** The trail may start past seq 1: its first record is taken as given (older files archived). */
  readonly partial?: boolean
}

const isJson = (text: string): boolean => {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

export const verifier = (key: Uint8Array, options: VerifyOptions = {}): Verifier => {
  const macOf = macFor(chainKey(key))
  let prev = GENESIS
  let seq = 0
  let records = 0
  let chains = 0
  let lastEvent: string | undefined
  let from = 1
  const unclean: Array<number> = []
  let last: { file: string; line: number } = { file: "", line: 0 }
  const fail = (problem: "not json" | "mac" | "seq" | "prev", file: string, line: number, at: number | undefined): Verdict =>
    ({ ok: false, records, seq: at, file, line, problem })

  return {
    line: (file, lineNumber, text) => {
      if (text.length === 0) return undefined
      // The sink writes JSON.stringify({ ...body, mac }), so the body's exact bytes are the line
      // without its `,"mac":"…"}` ending. The mac is keyed over those bytes, so slicing is as
      // safe as re-encoding, and several times cheaper on a million records.
      const ending = MAC_ENDING.exec(text)
      if (ending === null) return fail(isJson(text) ? "mac" : "not json", file, lineNumber, seq + 1)
      const bodyJson = `${text.slice(0, ending.index)}}`
      const fields = SEQ_PREV_ENDING.exec(bodyJson)
      if (fields === null) return fail(isJson(text) ? "seq" : "not json", file, lineNumber, seq + 1)
      const claimed = Number(fields[1])
      const claimedPrev = fields[2]!
      if (options.partial === true && records === 0 && claimed > 1) {
        // Nothing before it to check against: its mac below still has to hold.
        seq = claimed - 1
        prev = claimedPrev
        from = claimed
        chains = 1
      }
      // A node's restart starts a new chain at seq 1 from the genesis value.
      if (claimed === 1 && claimedPrev === GENESIS) {
        // The chain before a restart must have been sealed: else its tail may have been cut
        // (or its node crashed, which an operator can confirm).
        if (records > 0 && lastEvent !== "audit.closed") {
          return { ok: false, records, seq: seq + 1, file, line: lineNumber, problem: "missing tail" }
        }
        prev = GENESIS
        seq = 0
        chains += 1
      }
      if (claimed !== seq + 1) return fail("seq", file, lineNumber, seq + 1)
      if (claimedPrev !== prev) return fail("prev", file, lineNumber, claimed)
      const mac = ending[1]!
      if (macOf(prev, bodyJson) !== mac) return fail("mac", file, lineNumber, claimed)
      prev = mac
      seq = claimed
      records += 1
      lastEvent = EVENT.exec(bodyJson)?.[1]
      if (lastEvent === "audit.opened" && UNSEALED.test(bodyJson)) unclean.push(claimed)
      last = { file, line: lineNumber }
      return undefined
    },
    end: (open) => {
      const sealed = lastEvent === "audit.closed"
      if (!sealed && !open && records > 0) {
        return { ok: false, records, seq: seq + 1, file: last.file, line: last.line + 1, problem: "missing tail" }
      }
      return { ok: true, records, chains, sealed, from, unclean }
    }
  }
}
