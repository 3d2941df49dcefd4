export { StockadeServer, type ServerOptions } from './stockade-server';
export { planDelivery, DEFAULT_PRIORITIES, type WorkflowJobSpec, type PlannedJob, type Priorities, type JobSpec, type ServerJob, type ServerStore } from './plan-delivery';
export { webhookHandler, MAX_WEBHOOK_BYTES } from './webhook-intake';
export { logUrl, logSignature, checkLogSignature } from './log-link';
export type { GitHubPort, RunnerHost } from './ports';
export { adminHandler, hashToken, validateQuota, QUOTA_FIELDS } from './admin-api';
export { ServerMetrics } from './metrics';
export { JitRunners, type JitOptions } from './jit-runners';
