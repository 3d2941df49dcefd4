import { interpolate, type JobModel, type JobStatus } from '../workflow';
import { mapImage, type ImagePolicy } from './image-policy';
import type { JobSettings } from './types';

/** The runner image a job's `runs-on` labels name (at most one), else the default. */
export function imageForLabels(job: JobModel, contexts: Record<string, unknown>, status: JobStatus, settings: JobSettings): { image: string; label?: string } {
  const images = settings.images ?? {};
  if (!Object.keys(images).length) return { image: settings.image };
  let value: unknown = job.runsOn;
  if (typeof value === 'string') value = interpolate(value, contexts, status);
  const raw = Array.isArray(value) ? value : typeof value === 'object' && value !== null ? ((value as { labels?: unknown }).labels ?? []) : [value];
  const labels = (Array.isArray(raw) ? raw : [raw]).map((l) => (typeof l === 'string' ? interpolate(l, contexts, status) : String(l)).toLowerCase());
  const named = [...new Set(labels.filter((l) => l in images))];
  if (named.length > 1) throw new Error(`runs-on names more than one runner image (${named.join(', ')}): pick one`);
  return named.length ? { image: images[named[0]!]!, label: named[0] } : { image: settings.image };
}

/** The image and env of the job's `container:`; options that would weaken the sandbox are refused. */
export function jobContainer(job: JobModel, contexts: Record<string, unknown>, status: JobStatus, defaultImage: string, policy?: ImagePolicy): { image: string; env: Record<string, string> } {
  const c = job.container;
  if (!c) return { image: defaultImage, env: {} };
  const image = interpolate(c.image, contexts, status).trim();
  if (!image) throw new Error('container.image is empty');
  if (c.options?.trim()) throw new Error(`container.options '${c.options}' is not supported: the sandbox decides the container's options`);
  if (c.volumes.length) throw new Error('container.volumes is not supported: host paths are never mounted into a job');
  if (c.ports.length) throw new Error('container.ports is not supported: steps have no network');
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(c.env)) env[k] = interpolate(v, contexts, status);
  return { image: mapImage(image, policy), env };
}
