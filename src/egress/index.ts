export { normalizeDomainPattern, parseDomainList, narrowAllowlist, isAllowed, validatePolicy, AddressGuard, DEFAULT_DENIED_RANGES, DEFAULT_PORTS, type EgressPolicy } from './policy';
export { parseEgressEvent, describeRefusal, type EgressEvent } from './events';
export { SIDECAR_PORTS, type SidecarConfig } from './sidecar';
