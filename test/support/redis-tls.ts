// Certificates for a Redis that speaks TLS in tests: a throwaway CA and a server certificate
// for localhost/127.0.0.1 signed by it, made with the openssl CLI as an operator would (CI
// installs openssl), and the redis-server arguments that serve TLS only (no plain port).
import { execFileSync } from "node:child_process"
import { writeFileSync } from "node:fs"
import { join } from "node:path"

export interface RedisCertificates {
  /** The CA's certificate (PEM file): what TIDINGS_REDIS_CA_FILE names. */
  readonly ca: string
  readonly cert: string
  readonly key: string
}

/** Writes a CA and a server certificate signed by it into `dir`; valid for a day. */
export const makeRedisCertificates = (dir: string): RedisCertificates => {
  const openssl = (...args: Array<string>) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] })
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
  openssl("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=Tidings test Redis CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
  openssl("req", ...ec, "-keyout", "redis.key", "-out", "redis.csr", "-subj", "/CN=localhost")
  // Both names: a URL names localhost, a cluster announces its nodes by IP.
  writeFileSync(join(dir, "redis.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
  openssl("x509", "-req", "-in", "redis.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
    "-extfile", "redis.ext", "-out", "redis.pem")
  return { ca: join(dir, "ca.pem"), cert: join(dir, "redis.pem"), key: join(dir, "redis.key") }
}

/** redis-server arguments for TLS only on `port`: `--port 0` leaves no plain port to fall back to. */
export const tlsOnlyArgs = (port: number, files: RedisCertificates): Array<string> => [
  "--port", "0", "--tls-port", String(port),
  "--tls-cert-file", files.cert, "--tls-key-file", files.key, "--tls-ca-cert-file", files.ca,
  "--tls-auth-clients", "no"
]
