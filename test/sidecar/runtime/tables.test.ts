import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mapWithout, setWithout } from '../../../sidecar/runtime/tables.ts';

test('tables: removing the last entry gives a new empty table, anything else the same table without it', () => {
  const map = new Map([['a', 1], ['b', 2]]);
  assert.equal(mapWithout(map, 'a'), map, 'not the last entry: deleted in place');
  assert.deepEqual([...map], [['b', 2]]);
  assert.equal(mapWithout(map, 'x'), map, 'an absent key changes nothing');
  assert.deepEqual([...map], [['b', 2]]);
  const renewed = mapWithout(map, 'b');
  assert.notEqual(renewed, map, 'the last entry: a new Map');
  assert.equal(renewed.size, 0);
  assert.equal(mapWithout(renewed, 'b'), renewed, 'an empty Map stays as it is');

  const set = new Set(['a', 'b']);
  assert.equal(setWithout(set, 'a'), set);
  assert.deepEqual([...set], ['b']);
  assert.equal(setWithout(set, 'x'), set);
  const fresh = setWithout(set, 'b');
  assert.notEqual(fresh, set);
  assert.equal(fresh.size, 0);
});
