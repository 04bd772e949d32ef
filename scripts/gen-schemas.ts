/**
 * Writes the published JSON Schemas from their TypeBox declarations:
 * schemas/dnspolicy.schema.json and schemas/sidecar-config.schema.json.
 * Run with `npm run schemas` after changing a schema; a test checks the
 * committed files equal what this makes.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { jsonSchemaDocument, policyJsonSchema } from '../sidecar/config/policy-schema.ts';
import { SidecarConfigSchema } from '../sidecar/config/schema.ts';

/** Every generated schema: file name under schemas/ → its text. */
export function schemaFiles(): Record<string, string> {
  return {
    'dnspolicy.schema.json': JSON.stringify(policyJsonSchema(), null, 2) + '\n',
    'sidecar-config.schema.json': JSON.stringify(jsonSchemaDocument(SidecarConfigSchema), null, 2) + '\n',
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = new URL('../schemas/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(schemaFiles())) {
    writeFileSync(new URL(name, dir), text);
    process.stdout.write(`wrote schemas/${name}\n`);
  }
}
