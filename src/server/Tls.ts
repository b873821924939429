// The TLS policy of the only listener there is: TLS 1.2 and 1.3, on 1.2 only ECDHE with AEAD
// ciphers, curves with the hybrid post-quantum group first when OpenSSL has it. Also where the
// certificate comes from: the configured files, or in dev a self-signed one made at start.
import { readFileSync } from "node:fs"
import { createSecureContext, type SecureContextOptions } from "node:tls"
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

export const serverOptions = (material: TlsMaterial): SecureContextOptions & { honorCipherOrder: boolean } => ({
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
