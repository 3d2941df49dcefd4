import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostCapacity, nextAttempt, pickNext, type Waiting } from '../../src/queue';
import { validateQuota } from '../../src/server';

const job = (repository: string, i: number, priority = 0): Waiting => ({ key: `${repository}#${i}`, repository, org: repository.split('/')[0]!, priority, createdAt: i });
const open = { host: 2, repository: () => undefined, org: () => undefined };

test('fair across repositories: B\'s first job goes before A\'s 49 waiting ones', () => {
  const waiting = [...Array.from({ length: 50 }, (_, i) => job('o/a', i)), job('o/b', 100)];
  assert.equal(pickNext(waiting, [{ repository: 'o/a', org: 'o' }], open)?.key, 'o/b#100');
  assert.equal(pickNext(waiting, [], open)?.key, 'o/a#0', 'with nothing running and no history, the oldest head goes first');
  assert.equal(pickNext(waiting, [], open, (r) => (r === 'o/a' ? 1000 : undefined))?.key, 'o/b#100', 'round-robin: A was just served, B never');
});

test('host, repository and organisation limits; priority within a repository', () => {
  const waiting = [job('o/a', 1), job('o/a', 2, 5), job('p/c', 3)];
  assert.equal(pickNext(waiting, [{ repository: 'x/y', org: 'x' }, { repository: 'x/z', org: 'x' }], open), undefined, 'host full');
  assert.equal(pickNext(waiting, [], open)?.key, 'o/a#2', 'the higher priority job of a repository first');
  const repoLimit = { ...open, repository: (r: string) => (r === 'o/a' ? 1 : undefined) };
  assert.equal(pickNext(waiting, [{ repository: 'o/a', org: 'o' }], repoLimit)?.key, 'p/c#3');
  const orgLimit = { ...open, host: 10, org: (o: string) => (o === 'p' ? 1 : undefined) };
  assert.equal(pickNext([job('p/c', 1), job('p/d', 2)], [{ repository: 'p/c', org: 'p' }], orgLimit), undefined);
});

test('host capacity from cores and memory', () => {
  assert.equal(hostCapacity(2, 24 * 1024 ** 3, 4 * 1024 ** 3), 2);
  assert.equal(hostCapacity(16, 8 * 1024 ** 3, 4 * 1024 ** 3), 2);
  assert.equal(hostCapacity(4, 1024 ** 3, 4 * 1024 ** 3), 1);
});

test('quota bodies are validated field by field, naming the field and the range', () => {
  assert.deepEqual(validateQuota({ concurrency: 2, minutesPerDay: null }), { value: { concurrency: 2, minutesPerDay: null } });
  assert.match(JSON.stringify(validateQuota({ concurrency: 0 })), /concurrency must be a whole number from 1 to 256/);
  assert.match(JSON.stringify(validateQuota({ minutesPerDay: 1.5 })), /minutesPerDay/);
  assert.match(JSON.stringify(validateQuota({ cpu: 1 })), /unknown field 'cpu'/);
  assert.match(JSON.stringify(validateQuota([1])), /JSON object/);
});

test('GitHub write backoff: delays double to the cap, never shrink, and nothing is tried past the give-up time', () => {
  const p = { initialMs: 1000, maxMs: 8000, giveUpMs: 60_000 };
  const delays: number[] = [];
  for (let a = 1; a <= 8; a++) {
    const r = nextAttempt(a, 0, 0, p);
    assert.ok('retryAt' in r);
    delays.push(r.retryAt);
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 8000, 8000, 8000, 8000]);
  assert.deepEqual(nextAttempt(3, 0, 60_000, p), { giveUp: true });
  assert.deepEqual(nextAttempt(1, 0, 59_500, p), { retryAt: 60_000 }, 'the last attempt is at the give-up time, not after it');
});
