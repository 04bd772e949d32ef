/**
 * Convention: the LICENSE file is the license package.json names (its SPDX
 * `license` field), word for word the text Debian ships for it.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

const ROOT = new URL('../../', import.meta.url);

/** How the text of each license we could be under begins (its title lines), by SPDX identifier. */
const TITLES: Readonly<Record<string, RegExp>> = {
  'Apache-2.0': /^\s*Apache License\s+Version 2\.0, January 2004\s/,
  MIT: /^\s*(MIT License\s+)?Copyright/,
  'BSD-3-Clause': /^\s*(BSD 3-Clause License\s+)?Copyright/,
  'MPL-2.0': /^\s*Mozilla Public License Version 2\.0\s/,
};

/** Where Debian keeps the full text of a license (package base-files). */
const DEBIAN_TEXT: Readonly<Record<string, string>> = { 'Apache-2.0': '/usr/share/common-licenses/Apache-2.0', 'MPL-2.0': '/usr/share/common-licenses/MPL-2.0' };

const words = (text: string) => text.split(/\s+/).filter(Boolean).join(' ');

test('meta license: LICENSE is the license package.json names', () => {
  const pkg = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as { license?: string };
  assert.equal(typeof pkg.license, 'string', 'package.json has a license field');
  const id = pkg.license!;
  assert.ok(Object.hasOwn(TITLES, id), `package.json's license ${id} is not one this check knows: add how its text begins`);
  assert.ok(existsSync(new URL('LICENSE', ROOT)), 'a LICENSE file at the top');
  const text = readFileSync(new URL('LICENSE', ROOT), 'utf8');
  assert.match(text, TITLES[id]!, `LICENSE does not begin like the ${id} text`);
  const debian = DEBIAN_TEXT[id];
  if (debian !== undefined && existsSync(debian)) assert.equal(words(text), words(readFileSync(debian, 'utf8')), `LICENSE differs from ${debian}`);
});
