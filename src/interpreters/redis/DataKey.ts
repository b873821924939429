// The data key (TIDINGS_DATA_KEY_FILE) and what Redis may see of our data through it. By HKDF
// with distinct labels each key gives a names key (HMAC-SHA256 pseudonyms for every key, hash
// tag and pub/sub name) and a sealing key (AES-256-GCM for every value carrying event content).
// Values are sealed with the current key and open under any key given (a rotation's overlap).
import { Context, Effect, Layer, Metric } from "effect"
import { createCipheriv, createDecipheriv, createHmac, hkdfSync } from "node:crypto"
import * as Random from "../../domain/Random.ts"
import { RedisClient, RedisUnreachable } from "./Client.ts"
import { Keys } from "./Keys.ts"

/** A data key, derived: its id (written beside each sealed value), names key and sealing key. */
export interface DerivedKey {
  readonly id: string
  readonly names: Buffer
  readonly seal: Buffer
}

/** Smallest data key accepted: 32 bytes of entropy, as the audit and ticket keys. */
export const DATA_KEY_BYTES = 32

const expand = (material: Uint8Array, label: string, length: number): Buffer =>
  Buffer.from(hkdfSync("sha256", material, Buffer.alloc(0), `tidings/data/${label}/v1`, length))

export const derive = (material: Uint8Array): DerivedKey => {
  if (material.length < DATA_KEY_BYTES) throw new Error(`a data key must hold at least ${DATA_KEY_BYTES} bytes`)
  return {
    // 64 bits: tells keys apart beside a value, and says nothing of the key (HKDF output).
    id: expand(material, "key-id", 8).toString("base64url"),
    names: expand(material, "names", 32),
    seal: expand(material, "seal", 32)
  }
}

export const sealedOpenFailures = Metric.counter("tidings_sealed_open_failures_total", {
  description: "Values read from Redis that did not open (another data key, tampering, or moved to another channel's key); each is treated as missing",
  incremental: true
})

const NONCE_BYTES = 12
const TAG_BYTES = 16

/**
 * "<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>": no "|" (our messages' separator) and no
 * "." inside either part. `scope` (the channel's pseudonym) is the associated data, so a value
 * copied under another channel's key does not open there.
 */
export const seal = (key: DerivedKey, scope: string, plaintext: string): string => {
  const nonce = Random.bytes(NONCE_BYTES)
  const cipher = createCipheriv("aes-256-gcm", key.seal, nonce)
  cipher.setAAD(Buffer.from(scope, "utf8"))
  const body = Buffer.concat([nonce, cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()])
  return `${key.id}.${body.toString("base64url")}`
}

/** The plaintext, or undefined when no key given opens it for `scope`. */
export const open = (keys: ReadonlyMap<string, DerivedKey>, scope: string, sealed: string): string | undefined => {
  const dot = sealed.indexOf(".")
  const key = dot < 0 ? undefined : keys.get(sealed.slice(0, dot))
  if (key === undefined) return undefined
  const body = Buffer.from(sealed.slice(dot + 1), "base64url")
  if (body.length < NONCE_BYTES + TAG_BYTES) return undefined
  try {
    const decipher = createDecipheriv("aes-256-gcm", key.seal, body.subarray(0, NONCE_BYTES))
    decipher.setAAD(Buffer.from(scope, "utf8"))
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES))
    return Buffer.concat([decipher.update(body.subarray(NONCE_BYTES, body.length - TAG_BYTES)), decipher.final()]).toString("utf8")
  } catch {
    return undefined
  }
}

/** 128 bits of HMAC-SHA256 under the names key, base64url: what Redis sees instead of a name. */
export const pseudonym = (key: DerivedKey, text: string): string =>
  createHmac("sha256", key.names).update(text).digest().subarray(0, 16).toString("base64url")

export class DataKeys extends Context.Service<DataKeys, {
  /** The pseudonym of a name (its kind first, e.g. "s/" + subject), under the cluster's names key. */
  readonly name: (text: string) => string
  /** Sealed under the current key, bound to `scope`. */
  readonly seal: (scope: string, plaintext: string) => string
  /** Opened under any key given, or undefined (counted in tidings_sealed_open_failures_total). */
  readonly open: (scope: string, sealed: string) => string | undefined
  /** The id of the key whose names this node uses: what the cluster's key-check must say. */
  readonly namesKeyId: string
  /**
   * Whether the cluster's key-check names this node's names key (written again when Redis lost
   * it); false when Redis does not answer. Part of readiness.
   */
  readonly matches: Effect.Effect<boolean>
}>()("tidings/DataKeys") {}

/**
 * The data keys of one node: the current one seals; all open. Names come from the key the
 * cluster's key-check designates (the first node to start wrote its current key's id there),
 * so nodes in the middle of a rotation still agree on every name; a node that does not hold
 * that key is not ready. Redis that lost its state is designated again by whoever asks first.
 */
export const layer = (material: { readonly current: Uint8Array; readonly previous: ReadonlyArray<Uint8Array> }) =>
  Layer.effect(
    DataKeys,
    Effect.gen(function*() {
      const redis = (yield* RedisClient).commands
      const current = derive(material.current)
      const all = new Map<string, DerivedKey>([current, ...material.previous.map(derive)].map((key) => [key.id, key]))
      const designate = (id: string) =>
        Effect.tryPromise({
          try: async () => (await redis.set(Keys.keyCheck, id, "NX", "GET")) ?? id,
          catch: () => new RedisUnreachable({ reason: "silent" })
        })
      const designated = yield* designate(current.id)
      const names = all.get(designated) ?? current
      if (!all.has(designated)) {
        yield* Effect.logError("the cluster names its keys under a data key this node does not hold (key-check); not ready")
      }
      // Exported at 0 from the start, so a first failure shows in increase().
      yield* Metric.update(sealedOpenFailures, 0)
      const context = yield* Effect.context<never>()
      const failed = Effect.andThen(
        Metric.update(sealedOpenFailures, 1),
        Effect.logWarning("a sealed value did not open (another data key, or tampered); taken as missing")
      )
      return DataKeys.of({
        name: (text) => pseudonym(names, text),
        seal: (scope, plaintext) => seal(current, scope, plaintext),
        open: (scope, sealed) => {
          const plaintext = open(all, scope, sealed)
          if (plaintext === undefined) Effect.runForkWith(context)(failed)
          return plaintext
        },
        namesKeyId: names.id,
        matches: designate(names.id).pipe(
          Effect.map((id) => id === names.id),
          Effect.timeout("1 second"),
          Effect.orElseSucceed(() => false)
        )
      })
    })
  )
