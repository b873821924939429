// Specifies Members, the set that holds a lone member as itself (a channel's local
// subscribers, a pub/sub name's listeners): it behaves as a Set through one member and many.
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { Members } from "../../src/domain/Members.ts"

const contents = <T>(members: Members<T>) => {
  const seen: Array<T> = []
  members.forEach((member) => seen.push(member))
  return seen
}

describe("Members", () => {
  it("holds what a Set would, in the same order, through any adds and deletes", () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 4 })), { maxLength: 40 }), (steps) => {
      const members = new Members<number>()
      const set = new Set<number>()
      for (const [add, value] of steps) {
        if (add) (members.add(value), set.add(value))
        else (members.delete(value), set.delete(value))
        expect(members.size).toBe(set.size)
        expect(contents(members)).toEqual([...set])
      }
    }))
  })

  it("visits a member added during forEach, as a Set's for-of does, once it holds two or more", () => {
    const members = new Members<string>()
    members.add("a")
    members.add("b")
    const seen: Array<string> = []
    members.forEach((member) => {
      seen.push(member)
      if (member === "a") members.add("c")
    })
    expect(seen).toEqual(["a", "b", "c"])
  })
})
