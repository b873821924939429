// The data key every test node sharing a Redis uses (as every node of one gateway shares one),
// its file, and the key names it gives: what a test needs to find a channel's keys in Redis.
import { createHash } from "node:crypto"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as DataKey from "../../src/interpreters/redis/DataKey.ts"
import { named } from "../../src/interpreters/redis/Keys.ts"

/** 32 bytes, fixed: a test's nodes, its admin reads and the bench agree on every name. */
export const TEST_DATA_KEY = createHash("sha256").update("tidings test data key").digest()

let file: string | undefined
/** A file holding TEST_DATA_KEY, written once per process. */
export const testDataKeyFile = (): string => {
  if (file === undefined) {
    file = join(mkdtempSync(join(tmpdir(), "tidings-data-key-")), "data.key")
    writeFileSync(file, TEST_DATA_KEY, { mode: 0o600 })
  }
  return file
}

/** TIDINGS_DATA_KEY_FILE for an environment that names a Redis and no data key of its own. */
export const withDataKey = (env: Record<string, string | undefined>): Record<string, string> => {
  const redis = env.TIDINGS_REDIS_URL !== undefined || env.TIDINGS_REDIS_CLUSTER !== undefined
  const out = Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined))
  return redis && out.TIDINGS_DATA_KEY_FILE === undefined ? { ...out, TIDINGS_DATA_KEY_FILE: testDataKeyFile() } : out
}

/** The data keys of a test node: TEST_DATA_KEY, no previous one. */
export const testDataKeys = { current: TEST_DATA_KEY, previous: [] } as const

/** Key names under TEST_DATA_KEY (a cluster whose key-check names it). */
export const testKeys = named((text) => DataKey.pseudonym(DataKey.derive(TEST_DATA_KEY), text))

/** The data keys layer on `TEST_DATA_KEY`, for suites that build one Redis interpreter alone. */
export const testDataKeysLayer = DataKey.layer(testDataKeys)
