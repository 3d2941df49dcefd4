export { JobStore, TERMINAL_STATES, DEFAULT_RETENTION, MIN_JOB_RETENTION_MS, type JobRow, type JobState, type NewJob, type DeliveryRow, type RetentionPolicy, type PruneCounts } from './job-store';
export { QuotaStore, type Quota, type Usage } from './quota-store';
