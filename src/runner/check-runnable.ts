import { expandMatrix, hasExpression, type ContainerModel, type Diagnostic, type JobModel, type SourcePos, type WorkflowModel } from '../workflow';
import { cachedActionDir, isCheckout, parseRemoteUses } from './actions';
import { actionPolicyRefusal } from './action-policy';
import { parseServiceOptions } from './job-services';
import { resolveWorkingDirectory } from './step-env';
import type { JobSettings } from './types';
import { DEFAULT_IMAGE_POLICY, imageRefusal, mapImage, type ImagePolicy } from './image-policy';

/**
 * Checks what the runner will refuse, before anything runs, so that nothing is half-run:
 * actions that cannot be had, job containers and services with options, volumes or ports,
 * images outside the policy, a `working-directory` outside the job's volumes, and matrices over
 * GitHub's 256 jobs. Values with expressions are checked when they are evaluated.
 */
export function checkRunnable(wf: WorkflowModel, jobs: JobModel[], settings: Pick<JobSettings, 'actionCacheDir' | 'imagePolicy' | 'images' | 'actionSource' | 'actionPolicy'>): Diagnostic[] {
  const out: Diagnostic[] = [];
  const err = (pos: SourcePos, message: string) => out.push({ ...pos, severity: 'error', message });
  const policy = settings.imagePolicy ?? DEFAULT_IMAGE_POLICY;
  const checkDir = (text: string | undefined, pos: SourcePos, where: string) => {
    if (text === undefined || hasExpression(text)) return;
    const r = resolveWorkingDirectory(text);
    if ('error' in r) err(pos, `${where}: ${r.error}`);
  };
  checkDir(wf.defaults.workingDirectory, { file: wf.file, line: 1, column: 1 }, 'defaults.run.working-directory');
  for (const job of jobs) {
    const at = job.pos;
    checkDir(job.defaults.workingDirectory, at, `jobs.${job.id}.defaults.run.working-directory`);
    if (job.container) checkContainer(job.container, `jobs.${job.id}.container`, at, policy, settings.images, err, false);
    for (const [name, s] of Object.entries(job.services)) checkContainer(s, `jobs.${job.id}.services.${name}`, at, policy, settings.images, err, true);
    const m = job.strategy?.matrix;
    if (m !== undefined && !(typeof m === 'string' && hasExpression(m)) && !hasExpression(JSON.stringify(m))) {
      const r = expandMatrix(m);
      if ('error' in r) err(at, `jobs.${job.id}.strategy.matrix: ${r.error}`);
    }
    for (const step of job.steps) {
      checkDir(step.workingDirectory, step.workingDirectoryPos ?? step.pos, 'working-directory');
      const uses = step.uses;
      if (!uses || isCheckout(uses) || uses.startsWith('./') || uses === '.') continue;
      if (uses.startsWith('docker://')) {
        // The image runs as the step's container: the image policy decides, as for container:.
        const why = hasExpression(uses) ? undefined : imageRefusal(mapImage(uses, policy), policy, settings.images);
        if (why) err(step.pos, `uses: ${uses}: ${why}`);
        continue;
      }
      const r = parseRemoteUses(uses);
      const refused = r ? actionPolicyRefusal(r, settings.actionPolicy) : `uses: '${uses}' is not of the form owner/repo[/path]@ref`;
      if (refused) {
        err(step.pos, refused);
        continue;
      }
      // Fetched when the step runs; without a source only the offline cache can provide it.
      const found = cachedActionDir(settings.actionCacheDir, uses);
      if ('error' in found && !settings.actionSource) err(step.pos, found.error);
    }
  }
  return out;
}

function checkContainer(c: ContainerModel, where: string, jobPos: SourcePos, policy: ImagePolicy, images: Record<string, string> | undefined, err: (pos: SourcePos, m: string) => void, service: boolean): void {
  const pos = c.pos ?? jobPos;
  if (service && !hasExpression(c.options ?? '')) {
    try {
      parseServiceOptions(c.options);
    } catch (e) {
      err(pos, `${where}.options: ${(e as Error).message}`);
    }
  } else if (!service && c.options?.trim()) {
    err(pos, `${where}.options: container.options '${c.options}' is not supported: the sandbox decides the container's options`);
  }
  if (c.volumes.length) err(pos, `${where}.volumes: volumes are not supported: host paths are never mounted into a job (use the workspace, or services for state)`);
  // A service's ports need no mapping (steps reach it by name on the job network): noted at run time, not refused.
  if (c.ports.length && !service) err(pos, `${where}.ports: ports are not supported: steps have no network of their own to publish`);
  // An image that evaluates to an empty string is not started (GitHub documents it for services).
  if (!hasExpression(c.image) && c.image.trim()) {
    const why = imageRefusal(mapImage(c.image, policy), policy, images);
    if (why) err(pos, `${where}: ${why}`);
  }
}
