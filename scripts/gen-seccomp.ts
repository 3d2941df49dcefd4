// Regenerates seccomp/stockade.json from seccomp/policy.yml; with --check, exits 1 when
// the committed profile is stale; with --diff, prints syscalls added/removed.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildSeccompProfile, parseSeccompPolicy, allowedSyscalls, type SeccompProfile } from '../src/sandbox/seccomp-profile';

const root = join(__dirname, '..');
const policy = parseSeccompPolicy(readFileSync(join(root, 'seccomp/policy.yml'), 'utf8'));
const text = JSON.stringify(buildSeccompProfile(policy), null, 2) + '\n';
const out = join(root, 'seccomp/stockade.json');
const mode = process.argv[2];
if (mode === '--check' || mode === '--diff') {
  const committed = readFileSync(out, 'utf8');
  const a = new Set(allowedSyscalls(JSON.parse(committed) as SeccompProfile));
  const b = new Set(allowedSyscalls(JSON.parse(text) as SeccompProfile));
  for (const n of b) if (!a.has(n)) console.log(`+ ${n}`);
  for (const n of a) if (!b.has(n)) console.log(`- ${n}`);
  if (mode === '--check' && committed !== text) {
    console.error('seccomp/stockade.json is stale: run npm run seccomp:gen');
    process.exit(1);
  }
} else {
  writeFileSync(out, text);
  console.log(`wrote ${out}: ${allowedSyscalls(JSON.parse(text) as SeccompProfile).length} syscalls allowed`);
}
