import type { ContainerEngine } from './engine';
import { EGRESS_NETWORK, LABEL_EGRESS } from './labels';

let ensured: Promise<void> | undefined;

/**
 * Creates the shared routed network the egress sidecars use to reach out, once.
 * It carries no managed label, so the reaper leaves it; it holds no state.
 */
export function ensureEgressNetwork(engine: ContainerEngine): Promise<void> {
  ensured ??= (async () => {
    if (await engine.networkSubnet(EGRESS_NETWORK)) return;
    await engine.createNetwork(EGRESS_NETWORK, { [LABEL_EGRESS]: 'true' }, { internal: false }).catch(async (e: unknown) => {
      if (!(await engine.networkSubnet(EGRESS_NETWORK))) throw e;
    });
  })().catch((e: unknown) => {
    ensured = undefined;
    throw e;
  });
  return ensured;
}
