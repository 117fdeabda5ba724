// Default limits, named with the unit or qualifier last. Config may override the ones it names.
export const limits = {
  keyBytesMax: 4096,
  valueBytesMax: 1024 * 1024,
  bodyBytesMax: 1.5 * 1024 * 1024,
  /** Bytes of entries in one AppendEntries message. */
  appendBytesMax: 1024 * 1024,
  /** AppendEntries messages in flight to one follower before the leader waits for acks. */
  inflightMessagesMax: 256,
  /** Uncommitted entries the leader holds before it refuses proposals with UNAVAILABLE. */
  proposalQueueMax: 10_000,
  /** Bytes of snapshot data in one InstallSnapshot chunk. */
  snapshotChunkBytes: 512 * 1024,
  /** Largest peer frame accepted on the wire. */
  messageBytesMax: 64 * 1024 * 1024,
} as const;
