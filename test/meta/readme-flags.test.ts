/**
 * Convention: every sidecar flag is documented in the README's flag table.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { SIDECAR_FLAGS } from '../../sidecar/config/schema.ts';

test('readme: every sidecar flag appears in the README', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const missing = SIDECAR_FLAGS.filter((f) => !readme.includes('`' + f.flag + ' ') && !readme.includes('`' + f.flag + '`')).map((f) => f.flag);
  assert.deepEqual(missing, [], `flags missing from README.md: ${missing.join(', ')}`);
});
