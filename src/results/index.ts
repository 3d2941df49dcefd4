export { ResultsStore, DEFAULT_RESULTS_LIMITS, type ResultsLimits, type CacheEntry, type Artifact } from './results-store';
export { ResultsServer, type ResultsEvent, type ResultsServerOptions } from './results-server';
export { mintRuntimeToken, type ResultsJob } from './runtime-token';
export { GATEWAY_PREFIX, tokenOf, type GatewayTarget } from './api-gateway';
