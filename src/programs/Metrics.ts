// The programs' own counters, kept in Effect's metric registry. Labels are fixed codes only,
// never an id or free text; the Prometheus listener that exposes them is the edge's job.
import { Metric } from "effect"

/** Deliveries a socket refused because its client had stopped reading (it then closes 4508). */
export const deliveriesFailed = Metric.counter("tidings_deliveries_failed_total", {
  description: "Deliveries refused by a full outbound window (the connection closes 4508)",
  incremental: true
})
