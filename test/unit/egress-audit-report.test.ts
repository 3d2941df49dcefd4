// The check run of an audited job proposes the allowlist; a name cannot break out of the YAML block.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reportSummary, type JobReport } from '../../src/github';

const base: JobReport = { name: 'build', conclusion: 'success', steps: [], stepSummary: '', log: [], annotations: [] };
const network = { dnsAllowed: 3, dnsRefused: 0, connectionsAllowed: 2, connectionsRefused: 0, bytesOut: 10, refusals: [] };

test('an audited job\'s check run lists the names reached as an egress.allow block to paste; without audit nothing is added', () => {
  const s = reportSummary({ ...base, network: { ...network, audited: ['files.pythonhosted.org', 'registry.npmjs.org'] } });
  assert.match(s, /\*\*Egress audit\*\*: 2 names reached/);
  assert.match(s, /```yaml\negress:\n {2}allow:\n {4}- files\.pythonhosted\.org\n {4}- registry\.npmjs\.org\n```/);
  const hostile = reportSummary({ ...base, network: { ...network, audited: ['a.test\n```\n# injected'] } });
  assert.doesNotMatch(hostile, /# injected/);
  assert.match(reportSummary({ ...base, network: { ...network, audited: [] } }), /no name was reached; the job needs no egress/);
  assert.doesNotMatch(reportSummary({ ...base, network }), /Egress audit/);
});
