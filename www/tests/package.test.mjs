// The npm package as it would be published: `npm pack` takes every file the engine's JS loads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

test('npm pack of pkg/ holds the wasm, the glue, its types and every module the glue imports', () => {
  const [packed] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json'], { cwd: 'pkg', encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  const files = packed.files.map((f) => f.path);
  for (const file of ['package.json', 'README.md', 'pos_sync.js', 'pos_sync_bg.wasm', 'pos_sync.d.ts']) assert.ok(files.includes(file), `${file} in ${files}`);
  // The glue's own imports (wasm-bindgen's snippets: JS the engine calls), relative to it.
  const glue = readFileSync('pkg/pos_sync.js', 'utf8');
  const imports = [...glue.matchAll(/^import .* from '\.\/(.+)';$/gm)].map((m) => m[1]);
  assert.ok(imports.length > 0, 'the glue imports its snippets');
  for (const file of imports) assert.ok(files.includes(file), `${file} (imported by pos_sync.js) in ${files}`);
  const main = JSON.parse(readFileSync('pkg/package.json', 'utf8'));
  assert.ok(files.includes(main.main) && files.includes(main.types), JSON.stringify(main));
});
