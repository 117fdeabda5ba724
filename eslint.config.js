// Lint is part of `npm test`: a red lint is a red build. Besides the usual TypeScript rules it enforces the
// architecture of STYLE.md: the dependency direction api -> lease -> store -> raft, each folder's public surface
// (index.ts), and no clock, timer or randomness in the pure Raft core.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const internals = (folders) => ({
  regex: `^\\.\\./(?:\\.\\./)*(${folders.join('|')})/(?!index\\.js$)`,
  message: "Import another folder's public surface (its index.js), not its internals.",
});
const upward = (folders) => ({
  regex: `^\\.\\./(?:\\.\\./)*(${folders.join('|')})/`,
  message: 'Dependencies point one way: api -> lease -> store -> raft (see STYLE.md).',
});

const bannedInCore = {
  'no-restricted-globals': [
    'error',
    ...['setTimeout', 'setInterval', 'setImmediate', 'queueMicrotask', 'performance', 'process', 'crypto', 'Date'].map(
      (name) => ({ name, message: 'The Raft core reads no clock, timer or environment: take a Clock/Prng or tick.' }),
    ),
  ],
  'no-restricted-properties': [
    'error',
    { object: 'Math', property: 'random', message: 'Use the injected Prng.' },
    { object: 'Date', property: 'now', message: 'Use the injected Clock.' },
    { object: 'performance', property: 'now', message: 'Use the injected Clock.' },
  ],
};

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'data/', '.tap/', 'coverage/', '.scratch*/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
      eqeqeq: ['error', 'always'],
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true }],
      'max-lines': ['error', { max: 800, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    // The role dispatch of the core is the one expected exception to the function length rule (STYLE.md).
    files: ['src/raft/step-*.ts'],
    rules: { 'max-lines-per-function': 'off' },
  },
  {
    files: ['src/raft/**/*.ts'],
    ignores: ['src/raft/io/**'],
    rules: {
      ...bannedInCore,
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { regex: '^node:', message: 'The Raft core imports nothing from Node (only src/raft/io/ does I/O).' },
            { regex: '^(fs|net|os|crypto|timers|child_process|path)$', message: 'No Node modules in the Raft core.' },
            { regex: '^classic-level|^level|^pino|^undici|^fastify', message: 'No I/O libraries in the Raft core.' },
            upward(['store', 'lease', 'api']),
          ],
        },
      ],
    },
  },
  {
    files: ['src/raft/io/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [upward(['store', 'lease', 'api'])] }] },
  },
  {
    files: ['src/store/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [upward(['lease', 'api']), internals(['raft'])] }] },
  },
  {
    files: ['src/lease/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [upward(['api']), internals(['raft', 'store'])] }] },
  },
  {
    files: ['src/api/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [internals(['raft', 'store', 'lease'])] }] },
  },
);
