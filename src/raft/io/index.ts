// The I/O around the pure core: durable log, peer transports, and the driver that runs the core.
export { RaftDriver } from './driver.js';
export type { DriverCounters, DriverOptions } from './driver.js';
export { CorruptLogError, LevelLogStorage } from './level-log-storage.js';
export type { LogStorageStats } from './level-log-storage.js';
export { TcpTransport } from './tcp-transport.js';
export type { TcpTransportOptions } from './tcp-transport.js';
export { MemoryNetwork, MemoryTransport } from './transport.js';
export type { Transport, TransportOptions, TransportStats } from './transport.js';
export { PeerAuth } from './peer-security.js';
export type { PeerTlsOptions } from './peer-security.js';
