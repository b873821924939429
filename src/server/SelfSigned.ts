// Self-signed X.509 v3 certificate generator for dev mode.
// Dev mode must serve TLS from the first start, with no network, no openssl CLI and no extra
// dependency, so the certificate is built here from node:crypto and a tiny DER encoder.
import * as crypto from "node:crypto"
import { isIP } from "node:net"

export interface TlsMaterial {
  readonly key: string
  readonly cert: string
}

// --- Minimal DER: only the ASN.1 a certificate needs, so no parser library is pulled in -----

const length = (n: number): Buffer => {
  if (n < 0x80) return Buffer.from([n])
  const bytes: Array<number> = []
  for (let rest = n; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

const tlv = (tag: number, ...content: ReadonlyArray<Uint8Array>): Buffer => {
  const body = Buffer.concat(content)
  return Buffer.concat([Buffer.from([tag]), length(body.length), body])
}

const sequence = (...items: ReadonlyArray<Uint8Array>) => tlv(0x30, ...items)
const set = (...items: ReadonlyArray<Uint8Array>) => tlv(0x31, ...items)
const explicit = (n: number, inner: Uint8Array) => tlv(0xa0 | n, inner)
const octets = (bytes: Uint8Array) => tlv(0x04, bytes)
// DER omits BOOLEAN FALSE when it is the DEFAULT, so only TRUE is ever written.
const TRUE = tlv(0x01, Buffer.from([0xff]))

// DER insists on the shortest form, and a set high bit would make the value negative.
const integer = (bytes: Uint8Array): Buffer => {
  let start = 0
  while (start < bytes.length - 1 && bytes[start] === 0) start++
  const trimmed = bytes.subarray(start)
  const pad = (trimmed[0] ?? 0) & 0x80 ? [0] : []
  return tlv(0x02, Buffer.from(pad), trimmed)
}

const oid = (dotted: string): Buffer => {
  const [a = 0, b = 0, ...rest] = dotted.split(".").map(Number)
  const bytes = [40 * a + b]
  for (const arc of rest) {
    const base128 = [arc & 0x7f]
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) base128.unshift(0x80 | (v & 0x7f))
    bytes.push(...base128)
  }
  return tlv(0x06, Buffer.from(bytes))
}

// RFC 5280 4.1.2.5: UTCTime for 1950-2049, GeneralizedTime otherwise; seconds, always Zulu.
const time = (date: Date): Buffer => {
  const iso = date.toISOString().replace(/\.\d+Z$/, "Z").replace(/[-:T]/g, "")
  const year = date.getUTCFullYear()
  return year >= 1950 && year < 2050 ? tlv(0x17, Buffer.from(iso.slice(2))) : tlv(0x18, Buffer.from(iso))
}

// --- Certificate ---------------------------------------------------------------------------

const ipBytes = (ip: string): Buffer => {
  if (isIP(ip) === 4) return Buffer.from(ip.split(".").map(Number))
  // A zone id ("%eth0") has no place in a certificate; an embedded IPv4 tail becomes two groups.
  const address = (ip.split("%")[0] ?? "").replace(
    /(\d+)\.(\d+)\.(\d+)\.(\d+)$/,
    (_, a, b, c, d) => `${(Number(a) * 256 + Number(b)).toString(16)}:${(Number(c) * 256 + Number(d)).toString(16)}`
  )
  const groups = (part: string | undefined) => (part ? part.split(":") : [])
  const [head, tail] = address.split("::")
  const left = groups(head)
  const right = groups(tail)
  const all = [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right]
  const out = Buffer.alloc(16)
  all.forEach((group, i) => out.writeUInt16BE(parseInt(group, 16), i * 2))
  return out
}

const ECDSA_WITH_SHA256 = sequence(oid("1.2.840.10045.4.3.2"))
// RSA's algorithm identifier carries an explicit NULL parameter (RFC 4055).
const RSA_WITH_SHA256 = sequence(oid("1.2.840.113549.1.1.11"), tlv(0x05))
const DEFAULT_HOSTS = ["localhost", "127.0.0.1", "::1"]
// Tolerates small clock differences between the process and its clients.
const BACKDATE_MS = 5 * 60 * 1000

const extension = (id: string, critical: boolean, value: Uint8Array) =>
  sequence(oid(id), ...(critical ? [TRUE] : []), octets(value))

export const makeSelfSigned = (
  options: {
    readonly hosts?: ReadonlyArray<string>
    readonly days?: number
    readonly now?: Date
    /** EC P-256 (the default); RSA 2048 exists so tests can offer RSA key exchange. */
    readonly keyType?: "ec" | "rsa"
    /** Also usable as a TLS client certificate (a service's, in tests). */
    readonly clientAuth?: boolean
  } = {}
): TlsMaterial => {
  const hosts = options.hosts ?? DEFAULT_HOSTS
  const days = options.days ?? 30
  const now = options.now ?? new Date()
  if (hosts.length === 0) throw new RangeError("makeSelfSigned: at least one host is required")
  if (!(days > 0)) throw new RangeError("makeSelfSigned: days must be positive")

  const rsa = options.keyType === "rsa"
  const { privateKey, publicKey } = rsa
    ? crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
    : crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" })
  const algorithm = rsa ? RSA_WITH_SHA256 : ECDSA_WITH_SHA256

  const serial = crypto.randomBytes(16)
  // Clear the sign bit so the serial is positive, and set the next one so it stays 16 bytes long.
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x40

  const commonName = hosts.find((host) => isIP(host) === 0) ?? "localhost"
  const name = sequence(set(sequence(oid("2.5.4.3"), tlv(0x0c, Buffer.from(commonName, "utf8")))))

  const altNames = hosts.map((host) => (isIP(host) ? tlv(0x87, ipBytes(host)) : tlv(0x82, Buffer.from(host, "ascii"))))

  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))),
    integer(serial),
    algorithm,
    name,
    sequence(time(new Date(now.getTime() - BACKDATE_MS)), time(new Date(now.getTime() + days * 86_400_000))),
    name,
    publicKey.export({ type: "spki", format: "der" }),
    explicit(
      3,
      sequence(
        extension("2.5.29.17", false, sequence(...altNames)),
        extension("2.5.29.19", true, sequence()),
        // BIT STRING: digitalSignature (bit 0); an RSA key may also encipher (bit 2, RSA key exchange).
        extension("2.5.29.15", true, tlv(0x03, rsa ? Buffer.from([0x05, 0xa0]) : Buffer.from([0x07, 0x80]))),
        extension(
          "2.5.29.37",
          false,
          sequence(oid("1.3.6.1.5.5.7.3.1"), ...(options.clientAuth === true ? [oid("1.3.6.1.5.5.7.3.2")] : []))
        )
      )
    )
  )

  const signature = crypto.sign("sha256", tbs, rsa ? privateKey : { key: privateKey, dsaEncoding: "der" })
  const der = sequence(tbs, algorithm, tlv(0x03, Buffer.from([0]), signature))
  const base64 = der.toString("base64").replace(/.{1,64}/g, "$&\n")

  return {
    key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    cert: `-----BEGIN CERTIFICATE-----\n${base64}-----END CERTIFICATE-----\n`
  }
}
