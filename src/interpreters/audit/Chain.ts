// Turns an audit entry into the record of contract §8: refs pseudonymized with a keyed
// hash, then chained (`seq`, `prev`, `mac`) so removing, inserting, reordering or editing
// any record breaks verification. Every sink writes what this produces.
import { createHmac, hash } from "node:crypto"
import type { AuditEntry } from "../../domain/Audit.ts"

export interface AuditRecord {
  readonly ts: string
  readonly node: string
  readonly event: string
  readonly jti?: string
  readonly subject?: string
  readonly channel?: string
  readonly origin?: string
  readonly result?: string
  readonly cause?: string
  readonly close?: number
  readonly peer?: string
  readonly count?: number
  readonly seq: number
  readonly prev: string
  readonly mac: string
}

export const GENESIS = "0".repeat(64)

/** Separate keys for pseudonyms and for the chain, both derived from the one audit key. */
export const derive = (key: Uint8Array, purpose: string) => createHmac("sha256", key).update(purpose).digest()

/** Pseudonyms remembered per ref: a channel published to a thousand times is hashed once. */
const PSEUDONYMS_KEPT = 50_000

/**
 * Refs (subjects, channels) and peers (network addresses) get different derived keys, so an
 * address and a ref that happen to be the same string never share a pseudonym.
 */
export type PseudonymPurpose = "subject" | "peer"

export const pseudonymizer = (key: Uint8Array, purpose: PseudonymPurpose = "subject") => {
  const hmac = hmacFor(derive(key, `tidings/audit/${purpose}`))
  const known = new Map<string, string>()
  return (ref: string): string => {
    let pseudonym = known.get(ref)
    if (pseudonym === undefined) {
      pseudonym = hmac(ref).slice(0, 32)
      if (known.size >= PSEUDONYMS_KEPT) known.clear()
      known.set(ref, pseudonym)
    }
    return pseudonym
  }
}

export const chainKey = (key: Uint8Array) => derive(key, "tidings/audit/chain")

/**
 * HMAC-SHA256 from its definition (RFC 2104) with one-shot hashes over pre-padded keys: the
 * same bytes as createHmac at a sixth of the cost (createHmac re-checks and re-imports its key
 * on every call), which matters at a million records.
 */
const pads = (hmacKey: Uint8Array) => {
  const block = Buffer.alloc(64)
  Buffer.from(hmacKey).copy(block)
  return { inner: Buffer.from(block.map((b) => b ^ 0x36)), outer: Buffer.from(block.map((b) => b ^ 0x5c)) }
}

const outerHash = (outer: Buffer, innerDigest: Buffer) => hash("sha256", Buffer.concat([outer, innerDigest]), "hex")

/** HMAC-SHA256 of one string, hex. */
export const hmacFor = (hmacKey: Uint8Array) => {
  const { inner, outer } = pads(hmacKey)
  return (text: string): string => outerHash(outer, hash("sha256", Buffer.concat([inner, Buffer.from(text)]), "buffer"))
}

/** The mac of a record: HMAC-SHA256 over the previous mac and the record's own JSON without `mac`. */
export const macFor = (macKey: Uint8Array) => {
  const { inner, outer } = pads(macKey)
  return (prev: string, bodyJson: string): string =>
    outerHash(outer, hash("sha256", Buffer.concat([inner, Buffer.from(prev), Buffer.from(bodyJson)]), "buffer"))
}

/** Where a chain stands: the last record's seq and mac (seq 0 and GENESIS before the first). */
export interface ChainHead {
  readonly seq: number
  readonly mac: string
}

/** Chains records from `head` on: a sink that already holds this node's records continues it. */
export const makeChain = (key: Uint8Array, node: string, head: ChainHead = { seq: 0, mac: GENESIS }) => {
  const pseudonym = pseudonymizer(key)
  const peerPseudonym = pseudonymizer(key, "peer")
  const mac = macFor(chainKey(key))
  let seq = head.seq
  let prev = head.mac
  return (entry: AuditEntry, nowMs: number): AuditRecord => {
    const body = {
      ts: new Date(nowMs).toISOString(),
      node,
      event: entry.event,
      ...(entry.jti === undefined ? {} : { jti: entry.jti }),
      ...(entry.subject === undefined ? {} : { subject: pseudonym(entry.subject) }),
      // A channel's pseudonym is that of its printed form (`patient:<ref>`), which is also the
      // subject string of its owner: a patient's own records and their channel's records match.
      ...(entry.channel === undefined
        ? {}
        : { channel: `${entry.channel._tag}:${pseudonym(`${entry.channel._tag}:${entry.channel.ref}`)}` }),
      ...(entry.origin === undefined ? {} : { origin: entry.origin }),
      ...(entry.result === undefined ? {} : { result: entry.result }),
      ...(entry.cause === undefined ? {} : { cause: entry.cause }),
      ...(entry.close === undefined ? {} : { close: entry.close }),
      ...(entry.peer === undefined ? {} : { peer: peerPseudonym(entry.peer) }),
      ...(entry.count === undefined ? {} : { count: entry.count }),
      seq: ++seq,
      prev
    }
    const next = mac(prev, JSON.stringify(body))
    prev = next
    return { ...body, mac: next }
  }
}
