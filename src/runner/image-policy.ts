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
