// Types for cluster-key-slot (it ships none): the CRC16 slot of a key, honouring its {hash tag}.
// The same package and version ioredis routes Cluster commands with, so our groups are its groups.
declare module "cluster-key-slot" {
  const calculateSlot: (key: string) => number
  export default calculateSlot
}
