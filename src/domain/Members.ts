// A set that holds a lone member as itself. Most channels a node follows have one local
// subscriber (a patient's own channel), and a Set's hash table costs ~150 bytes per channel,
// held for as long as the socket is idle; a second member makes the Set.

export class Members<T> {
  private one: T | undefined = undefined
  private many: Set<T> | undefined = undefined

  get size(): number {
    return this.many !== undefined ? this.many.size : this.one === undefined ? 0 : 1
  }

  add(member: T): void {
    if (this.many !== undefined) this.many.add(member)
    else if (this.one === undefined || this.one === member) this.one = member
    else {
      this.many = new Set([this.one, member])
      this.one = undefined
    }
  }

  delete(member: T): void {
    if (this.many !== undefined) this.many.delete(member)
    else if (this.one === member) this.one = undefined
  }

  /** Each member, in the order added (as a Set's for-of, should `f` add or delete one). */
  forEach(f: (member: T) => void): void {
    if (this.many !== undefined) for (const member of this.many) f(member)
    else if (this.one !== undefined) f(this.one)
  }
}
