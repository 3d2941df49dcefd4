export { resolveHostConfig, findPackageRoot, lookupUser, type HostConfig } from './host-config';
export { egressSettings, upstreamDnsFrom, hostAddresses } from './egress-settings';
export { imageRef, baseImageRef, imageInputsHash, runnerImageNames, labelImages, runnerImages } from './image-ref';
export { diskLimitsFrom } from './disk-limits';
export { resultsSettings, type ResultsOptions } from './results-settings';
export { githubApiUrls, githubApiOf } from './github-urls';
export { extractTarball, entryPath, DEFAULT_TARBALL_LIMITS, type TarballLimits, type Extracted } from './extract-tarball';
export { ActionFetcher, ACTION_TARBALL_LIMITS, type FetchedAction } from './action-fetcher';
