// Reads a Prometheus exposition back into samples, and finds label values outside their
// metric's set (fixed in code, or bounded by the configured allowlists). Shared by the
// metrics unit and end-to-end tests.
import * as Metrics from "../../src/programs/Metrics.ts"

export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

const LABEL = /(\w+)="((?:[^"\\]|\\.)*)"/g

export const parseExposition = (text: string): ReadonlyArray<Sample> =>
  text.split("\n").filter((line) => line.length > 0 && !line.startsWith("#")).map((line) => {
    const match = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line)
    if (match === null) throw new Error(`unparsable exposition line: ${line}`)
    const labels: Record<string, string> = {}
    for (const [, key, value] of (match[2] ?? "").matchAll(LABEL)) labels[key!] = value!
    return { name: match[1]!, labels, value: Number(match[3]) }
  })

/** The value of one series (0 when absent), for differences between two scrapes. */
export const valueOf = (samples: ReadonlyArray<Sample>, name: string, labels: Record<string, string> = {}) =>
  samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0)

const HISTOGRAM_SUFFIX = /_(bucket|sum|count)$/

/** Label values outside their metric's set: fixed in code, or bounded by the configured allowlists. */
export const labelsOutsideSets = (
  samples: ReadonlyArray<Sample>,
  configured: { readonly kinds: ReadonlyArray<string>; readonly origins: ReadonlyArray<string> }
): ReadonlyArray<string> => {
  const sets: Record<string, Record<string, ReadonlyArray<string>>> = {
    ...Metrics.FIXED_LABELS,
    tidings_events_published_total: { kind: configured.kinds },
    tidings_origin_rejections_total: {
      ...Metrics.FIXED_LABELS["tidings_origin_rejections_total"],
      origin: [...configured.origins, Metrics.OTHER_ORIGIN]
    }
  }
  const wrong: Array<string> = []
  for (const sample of samples) {
    if (!sample.name.startsWith("tidings_")) continue
    const base = sample.name.replace(HISTOGRAM_SUFFIX, "")
    for (const [label, value] of Object.entries(sample.labels)) {
      if (label === "le" && base !== sample.name) continue
      if (!(sets[base]?.[label] ?? []).includes(value)) wrong.push(`${sample.name}{${label}="${value}"}`)
    }
  }
  return wrong
}
