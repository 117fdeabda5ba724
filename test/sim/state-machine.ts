// The simulator's replicated state machine: a running hash over every applied entry (index, term, content), a
// count, and the most recent commands. A state is an immutable record, so the simulated disk can keep the
// durable one by reference. A snapshot is the record's serialization (a few hundred bytes: several chunks).
import type { Entry, Snapshot } from '../../src/raft/index.js';

export interface SmState {
  readonly index: number;
  readonly term: number;
  readonly hash: number;
  readonly count: number;
  /** The last commands applied, newest last (padding that makes snapshots span several chunks). */
  readonly recent: readonly string[];
}

export const emptySmState: SmState = { index: 0, term: 0, hash: 0x811c9dc5, count: 0, recent: [] };

const recentMax = 8;
const decoder = new TextDecoder();
const encoder = new TextEncoder();
const contentCache = new WeakMap<Entry, string>();

/** A printable identity of an entry's payload: 'w:<command>', 'noop', or 'conf:<change>'. */
export function entryContent(entry: Entry): string {
  let content = contentCache.get(entry);
  if (content !== undefined) return content;
  if (entry.type === 'normal') {
    content = entry.data.byteLength === 0 ? 'noop' : `w:${decoder.decode(entry.data)}`;
  } else {
    const change = entry.change;
    content = change.type === 'init' ? `conf:init:${change.voters.join(',')}` : `conf:${change.type}:${change.id}`;
  }
  contentCache.set(entry, content);
  return content;
}

export function encodeCommand(command: string): Uint8Array {
  return encoder.encode(command);
}

function fnv(hash: number, text: string): number {
  let h = hash;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export function applyEntry(state: SmState, entry: Entry): SmState {
  const content = entryContent(entry);
  const isCommand = content.startsWith('w:');
  return {
    index: entry.index,
    term: entry.term,
    hash: fnv(state.hash, `|${entry.index}:${entry.term}:${content}`),
    count: state.count + (isCommand ? 1 : 0),
    recent: isCommand ? [...state.recent.slice(1 - recentMax), content] : state.recent,
  };
}

export function encodeSmState(state: SmState): Uint8Array {
  return encoder.encode(JSON.stringify(state));
}

export function decodeSmState(data: Uint8Array): SmState {
  const value = JSON.parse(decoder.decode(data)) as SmState;
  return value;
}

/** The state a snapshot carries, checked against the snapshot's own metadata. */
export function snapshotState(snapshot: Snapshot): SmState {
  const state = decodeSmState(snapshot.data);
  if (state.index !== snapshot.metadata.index || state.term !== snapshot.metadata.term) {
    throw new Error(
      `snapshot metadata (${snapshot.metadata.index}, ${snapshot.metadata.term}) does not match its data (${state.index}, ${state.term})`,
    );
  }
  return state;
}
