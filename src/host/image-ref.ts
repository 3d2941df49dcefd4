import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Hex } from '../common';
import type { HostConfig } from './host-config';

/** Bump when the build recipe below changes: part of the image's cache key. */
const RECIPE_VERSION = '1';

/** Hash of an image's inputs: its folder (README aside) and, for images built FROM base, the base's hash. */
export function imageInputsHash(h: Pick<HostConfig, 'packageRoot'>, name = 'base'): string {
  const dir = join(h.packageRoot, 'runner-images', name);
  const files = readdirSync(dir).filter((f) => f !== 'README.md').sort();
  const parts = files.flatMap((f) => [f, readFileSync(join(dir, f))]);
  return sha256Hex(RECIPE_VERSION, ...(name === 'base' ? [] : ['base', imageInputsHash(h, 'base')]), ...parts).slice(0, 16);
}

/** The runner images this package defines (folders of runner-images/). */
export function runnerImageNames(h: Pick<HostConfig, 'packageRoot'>): string[] {
  return readdirSync(join(h.packageRoot, 'runner-images'), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort((a, b) => (a === 'base' ? -1 : b === 'base' ? 1 : a.localeCompare(b)));
}

/** `localhost/stockade/NAME:<hash of runner-images/NAME>`: rebuilt only when its inputs change. */
export function imageRef(h: Pick<HostConfig, 'packageRoot'>, name: string): string {
  return `localhost/stockade/${name}:${imageInputsHash(h, name)}`;
}

export function baseImageRef(h: Pick<HostConfig, 'packageRoot'>): string {
  return imageRef(h, 'base');
}

/** runs-on label → image reference for every runner image but the base (the default). */
export function labelImages(h: Pick<HostConfig, 'packageRoot'>): Record<string, string> {
  return Object.fromEntries(runnerImageNames(h).filter((n) => n !== 'base').map((n) => [n, imageRef(h, n)]));
}

/** Every runner image by name, the base included: what `container: stockade/<name>` names in runner mode. */
export function runnerImages(h: Pick<HostConfig, 'packageRoot'>): Record<string, string> {
  return Object.fromEntries(runnerImageNames(h).map((n) => [n, imageRef(h, n)]));
}
