import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildConfig } from '../../../sidecar/config/flags.ts';
import { SidecarError } from '../../../sidecar/errors.ts';

test('flags: valid flags give the frozen configuration with the defaults filled in', () => {
  const config = buildConfig({ cacheMaxEntries: 500 });
  assert.equal(config.cache.maxEntries, 500);
  assert.equal(config.cache.maxBytes, 16 * 1024 * 1024);
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.cache));
});

test('flags: an invalid flag stops start-up naming the flag, the rule and the value given', () => {
  assert.throws(
    () => buildConfig({ cacheMaxEntries: -1, cacheMinTtl: 90_000 }),
    (err: unknown) => {
      assert.ok(err instanceof SidecarError);
      assert.equal(err.code, 'CONFIG_INVALID');
      assert.match(err.message, /^invalid sidecar configuration:/);
      assert.match(err.message, /--cache-max-entries: Expected integer to be greater or equal to 0 \(got -1\)/);
      assert.match(err.message, /--cache-min-ttl: Expected integer to be less or equal to 86400 \(got 90000\)/);
      return true;
    },
  );
});
