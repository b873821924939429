// The TLS policy of the only listener there is: TLS 1.2 and 1.3, on 1.2 only ECDHE with AEAD
// ciphers, curves with the hybrid post-quantum group first when OpenSSL has it. Also where the
// certificate comes from (the configured files, or in dev a self-signed one), and its live reload.
import { createHash, createPrivateKey, hkdfSync, X509Certificate } from "node:crypto"
import { type FSWatcher, readFileSync, watch } from "node:fs"
import { basename, dirname, resolve } from "node:path"
import { createSecureContext, type SecureContextOptions, type Server as TlsServer } from "node:tls"
import { makeSelfSigned, type TlsMaterial } from "./SelfSigned.ts"

/** TLS 1.2 suites: ECDHE key exchange, AEAD only. TLS 1.3 suites are all AEAD already. */
export const TLS12_CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305"
].join(":")

const CLASSIC_CURVES = "X25519:P-256:P-384"

const supports = (curves: string): boolean => {
  try {
    createSecureContext({ ecdhCurve: curves })
    return true
  } catch {
    return false
  }
}

export const ECDH_CURVES = supports(`X25519MLKEM768:${CLASSIC_CURVES}`) ? `X25519MLKEM768:${CLASSIC_CURVES}` : CLASSIC_CURVES

/**
 * The TLS session context: OpenSSL resumes only a session made under the same one. Node's
 * default is a hash of the command line, which differs between releases and hosts, so nodes
 * sharing TIDINGS_TLS_RESUMPTION_KEY_FILE would silently stop resuming each other's sessions
 * after a deploy. This one is the same on every node, and changes with the client CA: a node
 * that trusts another CA resumes no session whose client certificate an older CA verified.
 */
export const sessionContext = (clientCa: string | undefined): string =>
  createHash("sha256").update("tidings tls session context\0").update(clientCa ?? "").digest("hex").slice(0, 32)

/**
 * The TLS policy for one certificate. With `clientCa`, clients are asked for a certificate and
 * those signed by it are marked authorized; a client without one still connects (browsers
 * have none), and the routes that demand one refuse it.
 */
export const serverOptions = (
  material: TlsMaterial,
  clientCa?: string
): SecureContextOptions & {
  honorCipherOrder: boolean
  sessionIdContext: string
  requestCert?: boolean
  rejectUnauthorized?: boolean
  ALPNCallback: (arg: { servername: string; protocols: Array<string> }) => string | undefined
} => ({
  ...(clientCa === undefined ? {} : { ca: clientCa, requestCert: true, rejectUnauthorized: false }),
  sessionIdContext: sessionContext(clientCa),
  // HTTP/1.1 by callback rather than https' default ALPNProtocols list: Node copies that list
  // into a small Buffer for every socket, and each copy pins a 64 KiB pool slab shared with
  // short-lived buffers (6 KiB per idle connection, measured). Clients offering no ALPN are
  // not asked; one offering only other protocols is refused, as with the list.
  ALPNCallback: ({ protocols }) => (protocols.includes("http/1.1") ? "http/1.1" : undefined),
  key: material.key,
  cert: material.cert,
  minVersion: "TLSv1.2",
  maxVersion: "TLSv1.3",
  ciphers: TLS12_CIPHERS,
  ecdhCurve: ECDH_CURVES,
  honorCipherOrder: true
})

export type CertificateSource =
  | { readonly _tag: "Files"; readonly certFile: string; readonly keyFile: string }
  | { readonly _tag: "SelfSigned" }

export const load = (source: CertificateSource): TlsMaterial =>
  source._tag === "Files"
    ? { cert: readFileSync(source.certFile, "utf8"), key: readFileSync(source.keyFile, "utf8") }
    : makeSelfSigned({ hosts: ["localhost", "127.0.0.1", "::1"], days: 30 })

export type { TlsMaterial }

// Writing the cert then the key is two bursts of events; one reload should cover both.
const DEBOUNCE_MS = 200
// Kubernetes secret mounts swap a "..data" symlink and leave the file names themselves untouched.
const KUBERNETES_SWAP = "..data"

type Checked = { readonly _tag: "Valid"; readonly material: TlsMaterial } | { readonly _tag: "Invalid" }

// Every failure is the same "Invalid": an error message could quote the files' contents.
const readChecked = (source: { readonly certFile: string; readonly keyFile: string }): Checked => {
  try {
    const material = { cert: readFileSync(source.certFile, "utf8"), key: readFileSync(source.keyFile, "utf8") }
    const privateKey = createPrivateKey(material.key)
    const certificate = new X509Certificate(material.cert)
    return certificate.checkPrivateKey(privateKey) ? { _tag: "Valid", material } : { _tag: "Invalid" }
  } catch {
    return { _tag: "Invalid" }
  }
}

// Kept in memory only, to tell a real change from a touch, chmod or rewrite of the same bytes.
const digest = (material: TlsMaterial): string =>
  createHash("sha256").update(material.cert).update("\0").update(material.key).digest("hex")

/** Reloads the certificate and key from their files into `server` without a restart: on SIGHUP
 *  and when either file changes. Existing connections keep their session; new handshakes get the
 *  new certificate. A bad pair (unreadable, mismatched, not PEM) is refused and the old one stays.
 *  `watchFiles: false` leaves SIGHUP as the only trigger. Returns the function that stops it all. */
export const watchCertificate = (
  server: TlsServer,
  source: { readonly certFile: string; readonly keyFile: string },
  /** `unchanged`: a file event whose files hold the pair already served (nothing to log). */
  report: (outcome: "reloaded" | "refused" | "unchanged") => void,
  options: { readonly watchFiles?: boolean; readonly clientCa?: string | undefined } = {}
): (() => void) => {
  let stopped = false
  let timer: ReturnType<typeof setTimeout> | undefined
  // Seeded from the files as they are now, which is what the server was just started with.
  const initial = readChecked(source)
  let applied = initial._tag === "Valid" ? digest(initial.material) : undefined

  const reload = (trigger: "signal" | "files") => {
    if (stopped) return
    const checked = readChecked(source)
    if (checked._tag === "Invalid") return report("refused")
    const next = digest(checked.material)
    // An operator's SIGHUP always reloads; a file event about unchanged bytes changes nothing.
    if (trigger === "files" && next === applied) return report("unchanged")
    try {
      // The whole policy goes in again: setSecureContext resets every option it is not given.
      server.setSecureContext(serverOptions(checked.material, options.clientCa))
    } catch {
      return report("refused")
    }
    applied = next
    report("reloaded")
  }

  const onSignal = () => reload("signal")
  process.on("SIGHUP", onSignal)

  const schedule = () => {
    if (stopped) return
    if (timer !== undefined) clearTimeout(timer)
    timer = setTimeout(() => {
      timer = undefined
      reload("files")
    }, DEBOUNCE_MS)
    timer.unref()
  }

  // Watching the directory, not the file: editors and secret mounts replace the file by a rename
  // or a symlink swap, after which a watch on the old inode would never fire again.
  const watchers: Array<FSWatcher> = []
  if (options.watchFiles !== false) {
    const names = new Map<string, Set<string>>()
    for (const file of [source.certFile, source.keyFile]) {
      const directory = dirname(resolve(file))
      const set = names.get(directory) ?? new Set([KUBERNETES_SWAP])
      set.add(basename(file))
      names.set(directory, set)
    }
    for (const [directory, wanted] of names) {
      try {
        // Not persistent: a watch alone must not keep a process alive that is otherwise done.
        const watcher = watch(directory, { persistent: false }, (_event, name) => {
          // Some platforms give no name; then any change in the directory may be ours.
          if (name === null || wanted.has(name)) schedule()
        })
        // A directory that goes away ends its watch; SIGHUP still reloads.
        watcher.on("error", () => watcher.close())
        watchers.push(watcher)
      } catch {
        // No watch possible here (missing directory, no inotify slots): SIGHUP remains.
      }
    }
  }

  return () => {
    if (stopped) return
    stopped = true
    // Any SIGHUP listener cancels Node's default of exiting; once stopped, that default comes back.
    process.removeListener("SIGHUP", onSignal)
    for (const watcher of watchers) watcher.close()
    if (timer !== undefined) clearTimeout(timer)
  }
}

/**
 * The 48 bytes Node encrypts TLS session tickets with (name, HMAC and AES keys), derived from
 * the resumption key file: nodes given the same file resume each other's sessions, and a
 * restarted node its own, so a reconnect after a deploy skips the certificate signature.
 */
export const resumptionKeys = (secret: Uint8Array): Buffer =>
  Buffer.from(hkdfSync("sha256", secret, new Uint8Array(0), "tidings tls session tickets", 48))
