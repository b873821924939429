// Which items one command or script may take together: any on a single Redis, only those of
// one hash slot on a Cluster (anything else is CROSSSLOT). Slots are cluster-key-slot's, the
// function ioredis routes Cluster commands with, so a group is what ioredis sends to one node.
import calculateSlot from "cluster-key-slot"

/** The items in groups, each in the given order: one group on a single Redis, one per slot on a Cluster. */
export const groupBySlot = <T>(cluster: boolean, items: ReadonlyArray<T>, keyOf: (item: T) => string): Array<Array<T>> => {
  if (items.length === 0) return []
  if (!cluster) return [[...items]]
  const groups = new Map<number, Array<T>>()
  for (const item of items) {
    const slot = calculateSlot(keyOf(item))
    const group = groups.get(slot)
    if (group === undefined) groups.set(slot, [item])
    else group.push(item)
  }
  return [...groups.values()]
}
