export { verifyWebhookSignature } from './verify-signature';
export { GitHubApi, type GitHubAppOptions, type CheckRunFields, type CheckRunOutput, type CheckAnnotation, type DeliverySummary } from './github-api';
export { reportSummary, reportText, annotationBatches, completedFields, CHECK_TEXT_LIMIT, ANNOTATIONS_PER_REQUEST, type JobReport, type CheckConclusion } from './check-run-report';
export { labelsMatch, DEFAULT_RUNNER_LABELS } from './labels-match';
export { archivesThrough, publicActionArchives, type ActionArchiveApi } from './action-archives';
