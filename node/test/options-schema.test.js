// The TypeScript option types agree with the core's one option schema: every
// option path of ManagerConfig, SpawnOptions, PoolOptions, SupervisorOptions
// and ChildOptions in src/types.ts, and of TestManagerConfig in src/testing.ts
// (nested objects included, read with the TypeScript compiler API) is one the
// core accepts, and every path the core accepts is typed. Fails on drift either way.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const ts = require('typescript');

const native = require('../native/binding.js');

const TYPES = path.join(__dirname, '..', 'src', 'types.ts');

const TESTING = path.join(__dirname, '..', 'src', 'testing.ts');

let program;
const programs = new Map();

/** Every property path of the interface `name` exported by `source` (types.ts), nested object types entered. */
function typedPaths(name, source = TYPES) {
  if (!programs.has(source)) programs.set(source, ts.createProgram([source], { strict: true, target: ts.ScriptTarget.ES2022, types: [] }));
  const program = programs.get(source);
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(source);
  const exports = checker.getExportsOfModule(checker.getSymbolAtLocation(file));
  const symbol = exports.find((s) => s.name === name);
  assert.ok(symbol, `types.ts exports no ${name}`);
  const paths = new Set();
  const walk = (type, prefix, depth) => {
    assert.ok(depth < 8, `${prefix}: nesting too deep`);
    for (const prop of checker.getPropertiesOfType(type)) {
      const p = prefix ? `${prefix}.${prop.name}` : prop.name;
      paths.add(p);
      const t = checker.getNonNullableType(checker.getTypeOfSymbolAtLocation(prop, file));
      for (const part of t.isUnion() ? t.types : [t]) {
        const isObject = (part.flags & ts.TypeFlags.Object) !== 0;
        if (!isObject || checker.isArrayType(part) || part.getCallSignatures().length > 0) continue;
        if (checker.getIndexInfosOfType(part).length > 0) continue; // a record (env, dependencies): free keys
        walk(part, p, depth + 1);
      }
    }
  };
  walk(checker.getDeclaredTypeOfSymbol(symbol), '', 0);
  return [...paths].sort();
}

const KINDS = [
  ['manager', 'ManagerConfig'],
  ['testManager', 'TestManagerConfig', TESTING],
  ['spawn', 'SpawnOptions'],
  ['pool', 'PoolOptions'],
  ['supervisor', 'SupervisorOptions'],
  ['child', 'ChildOptions'],
];

/** Paths the core reads only to refuse them with a better message than "unknown option". */
const REFUSED = { child: /^restartPolicy(\.|$)/ }; // a supervised child's restarts are its supervisor's

for (const [kind, iface, source = TYPES] of KINDS) {
  test(`${iface} in ${path.basename(source)} has exactly the option paths the core accepts (${kind})`, () => {
    const core = native.optionSchema(kind).filter((p) => !REFUSED[kind]?.test(p));
    const typed = typedPaths(iface, source);
    assert.ok(core.length > 10 && typed.length > 10, 'both sides list their options');
    const untyped = core.filter((p) => !typed.includes(p));
    const unknown = typed.filter((p) => !core.includes(p));
    assert.deepEqual(untyped, [], `the core accepts options ${iface} does not type`);
    assert.deepEqual(unknown, [], `${iface} types options the core refuses`);
  });
}

test('CallOptions in types.ts is the core call option schema, plus the TS layer\'s own signal', () => {
  const core = native.optionSchema('call');
  assert.deepEqual(core, ['key', 'retries', 'timeout']);
  assert.deepEqual(typedPaths('CallOptions').filter((p) => p !== 'signal' && !p.startsWith('signal.')), core);
});

test("EventName in types.ts is exactly core's process event names (and the host's output:dropped)", () => {
  program ??= ts.createProgram([TYPES], { strict: true, target: ts.ScriptTarget.ES2022, types: [] });
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(TYPES);
  const symbol = checker.getExportsOfModule(checker.getSymbolAtLocation(file)).find((s) => s.name === 'EventName');
  const type = checker.getDeclaredTypeOfSymbol(symbol);
  const typed = (type.isUnion() ? type.types : [type]).map((t) => t.value).filter((n) => n !== 'output:dropped').sort();
  assert.deepEqual(typed, [...native.eventNames()].sort());
});

test('ListenOptions in types.ts has exactly the option paths the core accepts (listen)', () => {
  const core = native.optionSchema('listen');
  const typed = typedPaths('ListenOptions');
  assert.ok(core.includes('gateway.token'), 'the core lists the gateway');
  assert.deepEqual(typed, [...core].sort());
});

test('the schema export refuses an unknown kind', () => {
  assert.throws(() => native.optionSchema('pools'), /unknown option kind "pools"/);
});
