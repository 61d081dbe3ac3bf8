// The decorators under TypeScript's standard and experimental modes give the
// same definition, and misuse fails when the decorator is applied.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { MODES, fixture } = require('./helpers');
const { Process, Public, definitionOf } = require('titan-pm');

for (const mode of MODES) {
  test(`a compiled @Process class reads back its definition (${mode} decorators)`, () => {
    const Calculator = require(fixture('calculator.js', mode)).default;
    const def = definitionOf(Calculator);
    assert.equal(def.name, 'calculator');
    assert.equal(def.version, '1.0.0');
    assert.deepEqual([...def.methods].sort(), [
      'add', 'addAsync', 'blob', 'crash', 'crashFirst', 'cyclic', 'dependencies', 'echo', 'fail', 'failCounted', 'flood', 'increment', 'kill', 'log', 'loneSurrogate',
      'nested', 'overlapping', 'pid', 'slow', 'unsendable', 'wasAborted',
    ]);
    assert.equal(def.healthCheck, 'health');
    assert.deepEqual(def.onShutdown, ['cleanup']);
    assert.ok(Object.isFrozen(def));
    assert.equal(definitionOf(require(fixture('no-process.js', mode)).default), undefined);
  });
}

test('a subclass inherits public methods and may add its own', () => {
  class Base {
    a() {}
  }
  Public()(Base.prototype.a, { kind: 'method', name: 'a' });
  class Derived extends Base {
    b() {}
  }
  Public()(Derived.prototype, 'b', Object.getOwnPropertyDescriptor(Derived.prototype, 'b')); // experimental form
  Process({ name: 'derived' })(Derived);
  assert.deepEqual(definitionOf(Derived).methods, ['b', 'a']);
});

test('misapplied decorators fail when applied', () => {
  assert.throws(() => Process({}), /@Process needs a name/);
  assert.throws(() => Public()(undefined, { kind: 'field', name: 'x' }), /@Public\(\) applies to methods/);
  assert.throws(() => Public()({}, 'x', { value: 1 }), /@Public\(\) applies to methods/);
  assert.throws(() => Process({ name: 'x' })(() => {}, { kind: 'method', name: 'm' }), /@Process applies to classes/);
});
