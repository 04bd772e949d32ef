import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IdTable, LinkedList, mapWithout, setWithout } from '../../../sidecar/runtime/tables.ts';

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

test('IdTable: 20,000 random adds and removes agree with a Map, IDs that share low bits and wrap past the end included', () => {
  const table = new IdTable<{ id: number; n: number }>(16); // 32 slots
  const model = new Map<number, { id: number; n: number }>();
  let seed = 12345;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  for (let step = 0; step < 20_000; step++) {
    // IDs crowd a few home slots (and the last ones, so probes wrap to slot 0) to force long probe chains.
    const id = [rand(65536), (rand(8) << 5) | 31, (rand(8) << 5) | 30, rand(4) << 5][rand(4)]!;
    if (model.has(id)) {
      const e = model.get(id)!;
      assert.equal(table.get(id), e);
      if (rand(2) === 0) {
        assert.equal(table.remove(e), true);
        model.delete(id);
      } else {
        assert.equal(table.remove({ id, n: -1 }), false, 'another entry with the ID is not removed');
      }
    } else if (model.size < 16) {
      const e = { id, n: step };
      table.add(e);
      model.set(id, e);
    } else {
      assert.equal(table.get(id), undefined);
    }
    assert.equal(table.size, model.size);
    if (step % 997 === 0) for (const [k, v] of model) assert.equal(table.get(k), v, `ID ${k} found after step ${step}`);
  }
  assert.deepEqual(new Set(table.values()), new Set(model.values()));
  table.clear();
  assert.equal(table.size, 0);
  assert.equal(table.get([...model.keys()][0] ?? 0), undefined);
});

test('IdTable: a taken ID and a full table are refused with an error, not overwritten', () => {
  const table = new IdTable<{ id: number }>(2); // 8 slots: 7 entries at most
  table.add({ id: 5 });
  assert.throws(() => table.add({ id: 5 }), /ID 5 is taken/);
  for (let id = 100; id < 106; id++) table.add({ id });
  assert.equal(table.size, 7);
  assert.throws(() => table.add({ id: 200 }), /full/);
  assert.equal(table.get(5)?.id, 5);
});

test('IdTable: removing an entry keeps the entries that probed past it, across the end of the array, findable', () => {
  const table = new IdTable<{ id: number }>(16); // 32 slots: ID & 31 is the home slot
  const a = { id: 32 }; // home 0, slot 0
  const b = { id: 31 }; // home 31, slot 31
  const c = { id: 63 }; // home 31: 31 and 0 taken, slot 1
  const d = { id: 95 }; // home 31: slot 2
  for (const e of [a, b, c, d]) table.add(e);
  assert.equal(table.remove(a), true);
  assert.equal(table.get(63), c, 'c moved up into slot 0');
  assert.equal(table.get(95), d);
  assert.equal(table.remove(b), true);
  assert.equal(table.get(63), c, 'c moved back into its home slot 31');
  assert.equal(table.get(95), d);
  assert.equal(table.size, 2);
});

test('LinkedList: members leave from the front, the middle and the back, once, and the rest stay in order', () => {
  type Item = { n: number; listPrev: Item | null; listNext: Item | null };
  const items: Item[] = [1, 2, 3, 4, 5].map((n) => ({ n, listPrev: null, listNext: null }));
  const list = new LinkedList<Item>();
  for (const item of items) list.add(item);
  const order = () => list.toArray().map((i) => i.n);
  assert.deepEqual(order(), [5, 4, 3, 2, 1], 'added at the front');
  assert.equal(list.remove(items[2]!), true, 'the middle');
  assert.equal(list.remove(items[4]!), true, 'the front');
  assert.equal(list.remove(items[0]!), true, 'the back');
  assert.deepEqual(order(), [4, 2]);
  assert.equal(list.remove(items[2]!), false, 'a member that left is not removed again');
  assert.equal(list.size, 2);
  list.add(items[2]!);
  assert.deepEqual(order(), [3, 4, 2]);
  for (const item of list.toArray()) list.remove(item);
  assert.equal(list.size, 0);
  assert.equal(list.head, null);
});
