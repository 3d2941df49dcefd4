import type { Logger } from '../common';
import type { GitHubApi } from '../github';
import type { ServerStore } from './plan-delivery';

/**
 * Deliveries GitHub made that this server never stored (it was down), fetched from the App's
 * delivery log and stored; how many were new. A failure is logged and retried at the next pass.
 */
export async function reconcileDeliveries(o: { github: Pick<GitHubApi, 'listDeliveries' | 'getDelivery'>; store: ServerStore; logger: Logger }, events: ReadonlySet<string>): Promise<number> {
  let found = 0;
  try {
    for (const d of await o.github.listDeliveries(100)) {
      if (!events.has(d.event) || (await o.store.hasDelivery(d.guid))) continue;
      const full = await o.github.getDelivery(d.id);
      if (await o.store.addDelivery(full.guid, full.event, JSON.stringify(full.payload))) found++;
    }
  } catch (e) {
    o.logger.warn({ err: e }, 'reconciliation failed; will retry');
  }
  if (found) o.logger.info({ found }, 'reconciliation found missed deliveries');
  return found;
}
