// Bundles each composition root to CommonJS with esbuild (GitHub's workflow parser is
// an ES module that imports JSON without an import attribute; bundling inlines it).
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';

await build({
  entryPoints: { cli: 'src/cli/index.ts' },
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  external: ['cpu-features', 'ssh2'],
  logLevel: 'warning',
  banner: { js: '' },
});
chmodSync('dist/cli.js', 0o755);
console.log('built dist/cli.js');
