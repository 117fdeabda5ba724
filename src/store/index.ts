// The public surface of the store: the replicated MVCC key-value state machine, its command format and codec,
// the watch hub, and the hooks the layers above (leases, locks) plug into.
export { KvStore } from './kv-store.js';
export type { KvStoreOptions, Revisioned } from './kv-store.js';
export type {
  ApplyFailure,
  ApplyResult,
  Command,
  CommandEnvelope,
  CommandGuard,
  CompactCommand,
  CompactResult,
  Compare,
  CompareOp,
  CompareTarget,
  DeleteRangeCommand,
  DeleteResult,
  ExtensionCommand,
  ExtensionResult,
  Fence,
  KV,
  PutCommand,
  PutResult,
  RangeResult,
  StoreEvent,
  TxnCommand,
  TxnOp,
  TxnOpResult,
  TxnResult,
} from './commands.js';
export {
  applyFailure,
  checkKey,
  checkValue,
  commandLimits,
  failureToError,
  isApplyFailure,
  validateCommand,
  validateEnvelope,
} from './commands.js';
export { commandVersion, decodeCommand, encodeCommand } from './codec.js';
export type { ApplyContext, CommandExtension, StoreHooks } from './apply-context.js';
export type { RangeRequest, SortOrder, SortTarget } from './range.js';
export type { WatchHubOptions, WatchRequest } from './watch-hub.js';
export { watchHubDefaults } from './watch-hub.js';
export type { WatchMessage, Watcher } from './watcher.js';
export { dedupeWindowDefault } from './dedupe.js';
export type { BackupHeader, BackupSink } from './backup.js';
export { backupMagic, readBackup } from './backup.js';
export type { RestoredStore } from './backup-restore.js';
export { isEmptyDir, restoreBackup } from './backup-restore.js';
export type { SpaceQuotaOptions } from './space-quota.js';
export { SpaceQuota, spaceAlarm } from './space-quota.js';
