export type { Diagnostic, JobModel, ParseResult, RunDefaults, SourcePos, StepModel, WorkflowModel, Templated } from './model';
export { parseWorkflowText } from './parse-workflow';
export { WORKFLOW_LIMITS } from './limits';
export { findNeedsCycle, orderByNeeds } from './needs-graph';
export { evaluateCondition, evaluateExpression, evaluateValue, interpolate, hasExpression, ExpressionError, type JobStatus } from './expressions';
export { parseFileCommands, parsePathFile, isForbiddenEnvName, MAX_FILE_COMMAND_BYTES, type FileCommandResult } from './file-commands';
export { resolveShell, type ShellCommand } from './shell-command';
export { formatDiagnostic } from './format-diagnostic';
