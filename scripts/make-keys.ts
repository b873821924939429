// Makes the files every node of one gateway must share, into a directory: a TLS certificate
// and key (self-signed, for the given hosts), the ticket key, the audit key, the data key
// (names and seals what Redis holds), the TLS resumption key (session tickets any node
// resumes), and the dev issuer's key. Existing files are kept, so re-running never rotates a key by accident.
//   node scripts/make-keys.ts <directory> [host ...]
import { generateKeyPairSync, randomBytes } from "node:crypto"
import { existsSync, mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { makeSelfSigned } from "../src/server/SelfSigned.ts"

const [directory, ...extraHosts] = process.argv.slice(2)
if (directory === undefined) {
  process.stderr.write("usage: node scripts/make-keys.ts <directory> [host ...]\n")
  process.exit(64)
}
mkdirSync(directory, { recursive: true, mode: 0o700 })

const write = (name: string, make: () => string | Buffer) => {
  const file = join(directory, name)
  if (existsSync(file)) return process.stdout.write(`kept ${file}\n`)
  writeFileSync(file, make(), { mode: 0o600 })
  process.stdout.write(`made ${file}\n`)
}
const ecKey = () =>
  generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString()

// The certificate and its key are made together or not at all.
if (!existsSync(join(directory, "tls-cert.pem")) || !existsSync(join(directory, "tls-key.pem"))) {
  const tls = makeSelfSigned({ hosts: ["localhost", "127.0.0.1", "::1", ...extraHosts], days: 90 })
  writeFileSync(join(directory, "tls-key.pem"), tls.key, { mode: 0o600 })
  writeFileSync(join(directory, "tls-cert.pem"), tls.cert, { mode: 0o644 })
  process.stdout.write(`made ${join(directory, "tls-cert.pem")} and its key\n`)
}
// The ticket key: an HS256 secret (README, docs/decisions/0005). A directory made before keeps
// its PEM ticket key, which still works.
if (!existsSync(join(directory, "ticket-key.pem"))) write("ticket-key.bin", () => randomBytes(32))
write("dev-issuer-key.pem", ecKey)
write("audit-key.bin", () => randomBytes(32))
write("data-key.bin", () => randomBytes(32))
write("tls-resumption.bin", () => randomBytes(32))
