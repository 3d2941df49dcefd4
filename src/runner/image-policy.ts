/**
 * Which images a job may name in `container:` and `services:`. Stockade's own runner images
 * (`localhost/stockade/…`) always; others only when an operator pattern allows them (`*` at the
 * end matches any suffix), or when digest-pinned and the policy allows pins.
 */
export interface ImagePolicy {
  /** Patterns such as `localhost/mytools/*` or `docker.io/library/postgres:16`. @default [] */
  allow: string[];
  /** A reference pinned by digest (`name@sha256:…`) is allowed whatever its name. @default false */
  allowDigestPinned: boolean;
  /**
   * Registry references mapped to local images (`node:16-buster-slim` → `localhost/stockade/node`),
   * as act's -P maps runs-on labels: a workflow written for GitHub names images no registry here serves.
   * The mapped image meets the policy like any other.
   */
  map?: Record<string, string>;
}

export const DEFAULT_IMAGE_POLICY: ImagePolicy = { allow: [], allowDigestPinned: false };

const OWN_IMAGES = 'localhost/stockade/';
const DIGEST = /@sha256:[0-9a-f]{64}$/;

/** Why `image` may not run here, or undefined when it may. */
export function imageRefusal(image: string, policy: ImagePolicy, labelImages: Record<string, string> = {}): string | undefined {
  const ref = image.replace(/^docker:\/\//, '').trim();
  if (!ref) return 'the image is empty';
  if (ref.startsWith(OWN_IMAGES) || Object.values(labelImages).includes(ref)) return undefined;
  if (policy.allowDigestPinned && DIGEST.test(ref)) return undefined;
  for (const p of policy.allow) {
    if (p === ref || (p.endsWith('*') && ref.startsWith(p.slice(0, -1)))) return undefined;
  }
  return `image '${ref}' is neither one of Stockade's runner images (localhost/stockade/…) nor on the operator's image allowlist${policy.allowDigestPinned ? '' : ' (digest-pinned references are not allowed either)'}; add it with --allow-image or images.allow`;
}

/** `image` after the operator's map: the reference as written, with docker:// and docker.io/library/ forms matched too. */
export function mapImage(image: string, policy: ImagePolicy | undefined): string {
  const ref = image.replace(/^docker:\/\//, '').trim();
  const map = policy?.map;
  if (!map) return ref;
  const short = ref.replace(/^docker\.io\/(library\/)?/, '');
  return map[ref] ?? map[short] ?? map[`docker.io/library/${short}`] ?? ref;
}
