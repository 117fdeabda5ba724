// A small interpreter for the golden protocol scenarios in test/raft/scenarios/*.txt. Each line is a command;
// the transcript echoes it ("> command") followed by what it produced, every Ready in a compact, deterministic
// text form (soft and hard state, entries, snapshot, committed entries, messages, read states). scenarios.test.ts
// compares the whole transcript with the checked-in <name>.out.
//
// Commands (nodes are n1..nN; a filter is "n1->n2", "->n2", "n1->", a message type, or nothing for all):
//   add-nodes <count> [pre-vote=false] [check-quorum=false] [snapshot-chunk-bytes=N] [append-bytes-max=N]
//             [inflight-messages-max=N] [election-ticks=N] [heartbeat-ticks=N]
//   campaign <node>              propose <node> <text>           transfer-leader <node> <to>
//   (a refused proposal prints its KeelError code)
//   read-index <node> <context>  tick <node|all> [count]         compact <node> <index>
//   process-ready <node|all>     deliver [filter]                drop [filter]
//   isolate <node>               cut <a> <b>                     heal
//   stabilize                    status [node]                   log <node>
// Lines starting with '#' are comments and are echoed; blank lines are echoed too.
import { unreachable } from '../../src/util/assert.js';
import { KeelError } from '../../src/util/errors.js';
import type { Entry, PeerMessage, Ready } from '../../src/raft/index.js';
import { Cluster, describeData, type MessageFilter, type NodeOptions } from './helpers.js';

export function describeEntry(entry: Entry): string {
  if (entry.type === 'normal' && entry.data.byteLength === 0) return `${entry.index}/${entry.term} (no-op)`;
  if (entry.type === 'normal') return `${entry.index}/${entry.term} ${JSON.stringify(describeData(entry))}`;
  return `${entry.index}/${entry.term} ${describeData(entry)}`;
}

export function describeMessage(m: PeerMessage): string {
  const head = `${m.from}->${m.to} ${m.type} term=${m.term}`;
  switch (m.type) {
    case 'vote':
    case 'preVote':
      return `${head} last=${m.lastLogIndex}/${m.lastLogTerm}${m.transfer ? ' transfer' : ''}`;
    case 'voteResp':
    case 'preVoteResp':
      return `${head} ${m.granted ? 'granted' : 'rejected'}`;
    case 'append':
      return `${head} prev=${m.prevLogIndex}/${m.prevLogTerm} commit=${m.commit} entries=[${m.entries.map(describeEntry).join(', ')}]`;
    case 'appendResp':
      return m.reject ? `${head} reject index=${m.index} hint=${m.rejectHint}/${m.hintTerm}` : `${head} index=${m.index}`;
    case 'heartbeat':
      return `${head} commit=${m.commit}${m.context === '' ? '' : ` ctx=${m.context}`}`;
    case 'heartbeatResp':
      return `${head}${m.context === '' ? '' : ` ctx=${m.context}`}`;
    case 'snapshot':
      return `${head} snap=${m.metadata.index}/${m.metadata.term} offset=${m.offset} bytes=${m.data.byteLength}/${m.totalBytes}${m.done ? ' done' : ''}`;
    case 'snapshotResp':
      return `${head} snap=${m.snapshotIndex} next=${m.nextOffset}`;
    case 'timeoutNow':
      return head;
    case 'readIndex':
      return `${head} ctx=${m.context}`;
    case 'readIndexResp':
      return `${head} ctx=${m.context} index=${m.index} ${m.ok ? 'ok' : 'failed'}`;
    default:
      return unreachable(m, 'message');
  }
}

export function describeReady(id: string, rd: Ready): string[] {
  const out = [`${id}: ready${rd.mustSync ? ' (must-sync)' : ''}`];
  if (rd.softState !== null) out.push(`  soft-state: role=${rd.softState.role} leader=${rd.softState.leader ?? '-'}`);
  if (rd.hardState !== null) {
    out.push(`  hard-state: term=${rd.hardState.term} vote=${rd.hardState.vote ?? '-'} commit=${rd.hardState.commit}`);
  }
  if (rd.snapshot !== null) {
    const { index, term, conf } = rd.snapshot.metadata;
    out.push(`  snapshot: ${index}/${term} bytes=${rd.snapshot.data.byteLength} voters=${conf.voters.join(',')}`);
  }
  if (rd.entries.length > 0) out.push('  entries:', ...rd.entries.map((e) => `    ${describeEntry(e)}`));
  if (rd.committedEntries.length > 0) out.push('  committed:', ...rd.committedEntries.map((e) => `    ${describeEntry(e)}`));
  if (rd.messages.length > 0) out.push('  messages:', ...rd.messages.map((m) => `    ${describeMessage(m)}`));
  if (rd.readStates.length > 0) out.push(`  read-states: ${rd.readStates.map((r) => `${r.context}@${r.index}`).join(' ')}`);
  if (rd.droppedReads.length > 0) out.push(`  dropped-reads: ${rd.droppedReads.join(' ')}`);
  return out;
}

function parseFilter(arg: string | undefined): MessageFilter {
  if (arg === undefined || arg === 'all') return () => true;
  const arrow = /^(\w*)->(\w*)$/.exec(arg);
  if (arrow !== null) {
    const [, from, to] = arrow;
    return (m) => (from === '' || m.from === from) && (to === '' || m.to === to);
  }
  return (m) => m.type === arg;
}

function parseOptions(args: readonly string[]): NodeOptions {
  const options: Record<string, number | boolean> = {};
  const names: Record<string, string> = {
    'pre-vote': 'preVote',
    'check-quorum': 'checkQuorum',
    'snapshot-chunk-bytes': 'snapshotChunkBytes',
    'append-bytes-max': 'appendBytesMax',
    'inflight-messages-max': 'inflightMessagesMax',
    'election-ticks': 'electionTicks',
    'heartbeat-ticks': 'heartbeatTicks',
  };
  for (const arg of args) {
    const [key, value] = arg.split('=');
    const name = names[key ?? ''];
    if (name === undefined || value === undefined) throw new Error(`unknown option ${arg}`);
    options[name] = value === 'true' ? true : value === 'false' ? false : Number(value);
  }
  return options as NodeOptions;
}

export class ScenarioRunner {
  private cluster: Cluster | null = null;
  private readonly out: string[] = [];

  run(script: string): string {
    const lines = script.split('\n');
    if (lines.at(-1) === '') lines.pop();
    lines.forEach((line, i) => {
      const trimmed = line.trim();
      if (trimmed === '' || trimmed.startsWith('#')) {
        this.out.push(trimmed);
        return;
      }
      this.out.push(`> ${trimmed}`);
      try {
        this.execute(trimmed.split(/\s+/));
      } catch (err) {
        throw new Error(`line ${i + 1} (${trimmed}): ${(err as Error).message}`, { cause: err });
      }
    });
    return `${this.out.join('\n')}\n`;
  }

  private get c(): Cluster {
    if (this.cluster === null) throw new Error('add-nodes first');
    return this.cluster;
  }

  private execute([command, ...args]: string[]): void {
    const arg = (i: number): string => {
      const value = args[i];
      if (value === undefined) throw new Error(`missing argument ${i + 1}`);
      return value;
    };
    switch (command) {
      case 'add-nodes': {
        this.cluster = new Cluster(Number(arg(0)), { options: parseOptions(args.slice(1)) });
        this.out.push(`added ${this.c.ids().join(' ')}; each applied the bootstrap entry (voters ${this.c.ids().join(',')})`);
        return;
      }
      case 'campaign':
        this.c.raft(arg(0)).campaign();
        return;
      case 'propose': {
        try {
          const ticket = this.c.raft(arg(0)).propose(new TextEncoder().encode(args.slice(1).join(' ')));
          this.out.push(`proposed at ${ticket.index}/${ticket.term}`);
        } catch (err) {
          if (!(err instanceof KeelError)) throw err;
          this.out.push(`refused: ${err.code} (${err.message})`);
        }
        return;
      }
      case 'transfer-leader':
        this.c.raft(arg(0)).transferLeader(arg(1));
        return;
      case 'read-index':
        this.c.raft(arg(0)).readIndex(arg(1));
        return;
      case 'tick': {
        const count = Number(args[1] ?? 1);
        if (arg(0) === 'all') this.c.tickAll(count);
        else this.c.tick(arg(0), count);
        return;
      }
      case 'compact': {
        this.c.compact(arg(0), Number(arg(1)));
        const storage = this.c.node(arg(0)).storage;
        this.out.push(`${arg(0)}: snapshot at ${arg(1)} (${storage.snapshot().data.byteLength} bytes), first index ${storage.firstIndex()}`);
        return;
      }
      case 'process-ready':
        for (const id of arg(0) === 'all' ? this.c.ids() : [arg(0)]) this.processReady(id);
        return;
      case 'deliver':
        this.deliver(parseFilter(args[0]));
        return;
      case 'drop':
        for (const m of this.c.drop(parseFilter(args[0]))) this.out.push(`dropped ${describeMessage(m)}`);
        return;
      case 'isolate':
        this.c.isolate(arg(0));
        return;
      case 'cut':
        this.c.cut(arg(0), arg(1));
        return;
      case 'heal':
        this.c.heal();
        return;
      case 'stabilize':
        this.stabilize();
        return;
      case 'status':
        for (const id of args.length > 0 ? args : this.c.ids()) this.out.push(this.status(id));
        return;
      case 'log':
        this.out.push(`${arg(0)} log: ${this.c.logOf(arg(0)).join(' ')}`);
        return;
      default:
        throw new Error(`unknown command ${command ?? ''}`);
    }
  }

  private processReady(id: string): boolean {
    const rd = this.c.processReady(id);
    if (rd === null) return false;
    this.out.push(...describeReady(id, rd));
    return true;
  }

  private deliver(filter: MessageFilter): void {
    const matching = this.c.inflight.filter(filter);
    const delivered = new Set(this.c.deliver(filter));
    for (const m of matching) if (!delivered.has(m)) this.out.push(`lost ${describeMessage(m)}`);
    this.out.push(`delivered ${delivered.size} message(s)`);
  }

  private stabilize(): void {
    for (let round = 0; round < 1000; round++) {
      let processed = false;
      for (const id of this.c.ids()) processed = this.processReady(id) || processed;
      if (!processed && this.c.inflight.length === 0) return;
      this.deliver(() => true);
    }
    throw new Error('did not stabilize');
  }

  private status(id: string): string {
    const s = this.c.raft(id).status();
    const node = this.c.node(id);
    const progress =
      s.progress === null
        ? ''
        : ` progress=[${s.progress.map((p) => `${p.id}:${p.state}:${p.matchIndex}/${p.nextIndex}`).join(' ')}]`;
    return (
      `${id}: ${s.role} term=${s.term} vote=${s.vote ?? '-'} leader=${s.leader ?? '-'} ` +
      `log=${s.firstIndex}..${s.lastIndex} commit=${s.commitIndex} applied=${s.appliedIndex} ` +
      `state=[${node.state.map((item) => item.command).join(',')}]${progress}`
    );
  }
}
