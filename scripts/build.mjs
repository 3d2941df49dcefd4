// Bundles the composition roots (and, with --tests, each test file) to CommonJS with
// esbuild. GitHub's workflow parser and expression engine are ES modules whose JSON
// imports lack the import attribute Node 20 requires; bundling inlines them.
import { build } from 'esbuild';
import { chmodSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', sourcemap: true, external: ['cpu-features', 'ssh2', 'better-sqlite3', 'pg-native'], logLevel: 'warning' };
// Tests may call esbuild itself (to bundle a client library into a test action): it stays a package.
const testsOnly = { external: [...common.external, 'esbuild', 'playwright-core'] };

await build({ ...common, entryPoints: { cli: 'src/cli/index.ts' }, outdir: 'dist' });
chmodSync('dist/cli.js', 0o755);
console.log('built dist/cli.js');
// The egress sidecar runs inside its own container from a read-only volume: one self-contained file.
await build({ ...common, sourcemap: false, entryPoints: { sidecar: 'src/egress/sidecar-main.ts' }, outdir: 'dist' });
console.log('built dist/sidecar.js');
// The container hook GitHub's runner runs as its own user: Node's modules only, no source map.
await build({ ...common, sourcemap: false, entryPoints: { hook: 'src/hook/client.ts' }, outdir: 'dist' });
console.log('built dist/hook.js');
// The GitHub Action runs from a checkout without node_modules: everything is bundled
// (ssh2, which dockerode loads eagerly, included; its optional native parts stay out).
// The bundle is committed; CI fails when it differs from what the source builds.
await build({ ...common, sourcemap: false, external: ['cpu-features', '*.node'], entryPoints: { index: 'src/action/index.ts' }, outdir: 'dist/action', legalComments: 'none' });
console.log('built dist/action/index.js');

if (process.argv.includes('--tests')) {
  rmSync('.test-dist', { recursive: true, force: true });
  const entries = [];
  for (const dir of readdirSync('test', { withFileTypes: true }).filter((d) => d.isDirectory())) {
    for (const f of readdirSync(join('test', dir.name))) if (f.endsWith('.test.ts')) entries.push(join('test', dir.name, f));
  }
  await build({ ...common, ...testsOnly, entryPoints: entries, outbase: 'test', outdir: '.test-dist' });
  console.log(`built ${entries.length} test files into .test-dist/`);
}
