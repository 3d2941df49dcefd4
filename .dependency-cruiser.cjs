// Enforces the module table of ../shared/STYLE.md: dependencies point one way.
const leaf = ['workflow', 'sandbox', 'egress', 'queue', 'github', 'store', 'results'];
module.exports = {
  forbidden: [
    { name: 'common-is-a-leaf', severity: 'error', from: { path: '^src/common' }, to: { path: '^src/(?!common)' } },
    ...leaf.map((m) => ({
      name: `${m}-imports-only-common`,
      severity: 'error',
      from: { path: `^src/${m}/` },
      to: { path: `^src/(?!common/|${m}/)` },
    })),
    { name: 'runner-reports-through-a-port', severity: 'error', from: { path: '^src/runner/' }, to: { path: '^src/(github|store|server|cli|action)/' } },
    // cli is the outermost root: `stockade serve` composes the server, so cli may import server (never the reverse).
    { name: 'roots-do-not-import-each-other', severity: 'error', from: { path: '^src/(server|action|hook)/' }, to: { path: '^src/(server|cli|action|hook)/', pathNot: '^src/$1/' } },
    // host: facts of this machine (user, socket, image references, egress settings), shared by the roots.
    { name: 'host-is-below-the-roots', severity: 'error', from: { path: '^src/host/' }, to: { path: '^src/(cli|server|action|hook)/' } },
    { name: 'cli-imports-no-action', severity: 'error', from: { path: '^src/cli/' }, to: { path: '^src/action/' } },
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
  ],
  options: { tsConfig: { fileName: 'tsconfig.json' }, doNotFollow: { path: 'node_modules' } },
};
