import type { EventEmitter } from 'node:events';

/**
 * Starts a listener (`start` calls back once bound) and resolves with it. An error
 * before that rejects; one after it (e.g. too many open files) is absorbed, so it
 * cannot end the sidecar.
 */
export function whenListening<T extends EventEmitter>(target: T, start: (ready: () => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    target.once('error', reject);
    start(() => {
      target.off('error', reject);
      target.on('error', () => undefined);
      resolve(target);
    });
  });
}
