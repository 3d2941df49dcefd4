import { LABEL_JOB, managedLabels } from '../sandbox';
import { LogSink, startJobNetwork, startJobServices, type JobNetwork, type JobServices, type ServiceRequest } from '../runner';
import { SecretMasker } from '../workflow';
import type { HookJobsOptions, Emit } from './hook-jobs';

/** The egress sidecar's wall limit: GitHub's longest job on a self-hosted runner is five days; 360 minutes is its default. */
const JOB_WALL_MS = 5 * 24 * 3600_000;

/**
 * A hook job's network (its egress sidecar when the broker allows any name) and its service
 * containers on it, or why they could not start (nothing of them is left then).
 */
export async function startHookNetwork(o: HookJobsOptions, key: string, services: ServiceRequest[], emit: Emit): Promise<{ net: JobNetwork; services?: JobServices & { ids: string[] } } | { errors: string[] }> {
  const sink = new LogSink(new SecretMasker(), (_stream, text) => emit(text));
  const labels = managedLabels(o.sandbox.ownerTag, { [LABEL_JOB]: `hook-${key}` });
  const logger = o.logger.child({ job: key });
  let net: JobNetwork;
  try {
    net = await startJobNetwork(
      {
        sandbox: o.sandbox,
        logger,
        key: `hook-${key}`,
        labels,
        image: o.sidecarImage,
        limits: o.limits,
        deadline: Date.now() + JOB_WALL_MS,
        egress: o.egress,
        nodeBinary: o.nodeBinary,
        // The runner masks what the hook prints; the broker's own log gets the count, not the names.
        mask: (t) => t,
      },
      o.allow,
      sink,
    );
  } catch (e) {
    return { errors: [`the job's network could not start: ${(e as Error).message}`] };
  }
  if (!services.length) return { net };
  try {
    const started = await startJobServices({ sandbox: o.sandbox, logger, imagePolicy: o.policy, images: o.images, limits: o.limits, deadline: Date.now() + JOB_WALL_MS, labels, mask: (t) => t }, net, services, sink);
    return { net, services: started };
  } catch (e) {
    await net.stop(sink).catch(() => undefined);
    return { errors: [(e as Error).message] };
  }
}
