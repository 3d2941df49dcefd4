export { JobStore, TERMINAL_STATES, type JobRow, type JobState, type NewJob, type DeliveryRow } from './job-store';
export { QuotaStore, type Quota, type Usage } from './quota-store';
