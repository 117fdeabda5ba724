// Goal: the test-only config fields: nodes[].dial (per-peer dial overrides for fault proxies) and debug.
import t from 'tap';
import { ConfigError, parseClusterConfig } from '../../src/config.js';

const nodes = [
  { id: 'n1', peer: '127.0.0.1:7101', client: '127.0.0.1:7201', dataDir: 'd1', dial: { n2: { peer: '127.0.0.1:9001', client: '127.0.0.1:9002' } } },
  { id: 'n2', peer: '127.0.0.1:7102', client: '127.0.0.1:7202', dataDir: 'd2' },
];

void t.test('dial overrides and debug parse; absent means none', async (t) => {
  const config = parseClusterConfig({ nodes, debug: true }, null);
  t.same(config.nodes[0]!.dial, { n2: { peer: '127.0.0.1:9001', client: '127.0.0.1:9002' } });
  t.equal(config.nodes[1]!.dial, undefined);
  t.equal(config.debug, true);
  const plain = parseClusterConfig({ nodes: nodes.map(({ dial: _d, ...n }) => n) }, null);
  t.equal(plain.debug === true, process.env.KEEL_DEBUG === '1');
});

void t.test('bad dial and debug values are refused naming the field', async (t) => {
  const bad = (dial: unknown): unknown => ({ nodes: [{ ...nodes[1], dial }, nodes[0]] });
  t.throws(() => parseClusterConfig(bad({ n1: { peer: 'nope' } }), null), new ConfigError('config: field "nodes[0].dial.n1.peer" must be a string matching /^.+:\\d+$/'));
  t.throws(() => parseClusterConfig(bad({ n1: { other: '1.2.3.4:5' } }), null), /unknown field "nodes\[0\]\.dial\.n1\.other"/);
  t.throws(() => parseClusterConfig(bad([]), null), /field "nodes\[0\]\.dial" must be an object/);
  t.throws(() => parseClusterConfig({ nodes, debug: 'yes' }, null), /field "debug" must be a boolean/);
});
