export { JobStore, TERMINAL_STATES, DEFAULT_RETENTION, MIN_JOB_RETENTION_MS, isPostgresUrl, type JobRow, type JobState, type NewJob, type DeliveryRow, type RetentionPolicy, type PruneCounts, type Fence } from './job-store';
export { QuotaStore, type Quota, type Usage } from './quota-store';
export { Leases, type ClaimLimits, type HostRow, type HostLossPolicy, type PickNext } from './leases';
export { redact as redactDatabaseUrl } from './postgres-db';
export type { SqlDb } from './sql';
