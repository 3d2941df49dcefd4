import { isForbiddenEnvName, parseWorkflowCommand, toAnnotation, type Annotation, type SecretMasker } from '../workflow';

/** Lines of a step's log kept in its result (the tail; the observer sees every line). */
export const STEP_LOG_TAIL_LINES = 1_000;
/** Annotations kept per step (GitHub accepts 10 of each level per step in a check run; more are kept here for the log). */
export const MAX_ANNOTATIONS_PER_STEP = 50;

const DEPRECATED_OUTPUT =
  'The `%s` command is deprecated and will be disabled soon. Please upgrade to using Environment Files. For more information see: https://github.blog/changelog/2022-10-11-github-actions-deprecating-save-state-and-set-output-commands/';
const DISABLED =
  'Unable to process command \'%s\' successfully. The `%c` command is disabled. Please upgrade to using Environment Files or opt into unsecure command execution by setting the `ACTIONS_ALLOW_UNSECURE_COMMANDS` environment variable to `true`. For more information see: https://github.blog/changelog/2020-10-01-github-actions-deprecating-set-env-and-add-path-commands/';

/** Where one step's lines go: masked, kept as a tail, forwarded to the observer. Composite steps share their outer step's sink. */
export class LogSink {
  readonly lines: string[] = [];
  droppedLines = 0;
  readonly annotations: Annotation[] = [];

  constructor(
    readonly masker: SecretMasker,
    private readonly forward: (stream: 'stdout' | 'stderr', text: string) => void,
  ) {}

  write(stream: 'stdout' | 'stderr', text: string): void {
    const masked = this.masker.mask(text);
    this.lines.push(masked);
    if (this.lines.length > STEP_LOG_TAIL_LINES) {
      this.lines.shift();
      this.droppedLines++;
    }
    this.forward(stream, masked);
  }

  annotate(a: Annotation): void {
    if (this.annotations.length >= MAX_ANNOTATIONS_PER_STEP) return;
    const masked: Annotation = { ...a, message: this.masker.mask(a.message) };
    if (a.title !== undefined) masked.title = this.masker.mask(a.title);
    this.annotations.push(masked);
  }
}

export interface StepLogOptions {
  sink: LogSink;
  /** `::debug::` lines are shown (ACTIONS_STEP_DEBUG). */
  debug: boolean;
  /** ACTIONS_ALLOW_UNSECURE_COMMANDS is true in the step's environment. */
  allowUnsecureCommands: boolean;
}

/**
 * Processes one process's output line by line as GitHub's runner does: workflow
 * commands are acted on, every shown line is masked (by the sink).
 */
export class StepLog {
  readonly outputs: Record<string, string> = {};
  readonly state: Record<string, string> = {};
  readonly env: Record<string, string> = {};
  readonly path: string[] = [];
  /** Commands that failed the step (disabled commands), as GitHub fails it. */
  readonly commandErrors: string[] = [];
  private stopToken: string | undefined;

  constructor(private readonly o: StepLogOptions) {}

  private show(stream: 'stdout' | 'stderr', text: string): void {
    this.o.sink.write(stream, text);
  }

  private annotate(a: Annotation): void {
    this.o.sink.annotate(a);
  }

  line(stream: 'stdout' | 'stderr', text: string): void {
    const cmd = parseWorkflowCommand(text);
    if (!cmd) return this.show(stream, text);
    if (this.stopToken !== undefined) {
      if (text.trim() === `::${this.stopToken}::`) this.stopToken = undefined;
      else this.show(stream, text);
      return;
    }
    switch (cmd.command) {
      case 'add-mask':
        if (cmd.message.trim()) this.o.sink.masker.add(cmd.message);
        else this.show(stream, "##[warning]Can't add secret mask for empty string in ##[add-mask] command.");
        return;
      case 'stop-commands':
        if (cmd.message) this.stopToken = cmd.message;
        return;
      case 'group':
        return this.show(stream, `##[group]${cmd.message}`);
      case 'endgroup':
        return this.show(stream, '##[endgroup]');
      case 'error':
      case 'warning':
      case 'notice':
        this.annotate(toAnnotation(cmd.command, cmd));
        return this.show(stream, `##[${cmd.command}]${cmd.message}`);
      case 'debug':
        if (this.o.debug) this.show(stream, `##[debug]${cmd.message}`);
        return;
      case 'echo':
        return;
      case 'set-output':
      case 'save-state': {
        const name = cmd.properties.name;
        this.warn(DEPRECATED_OUTPUT.replace('%s', cmd.command));
        if (!name) return this.show(stream, `##[error]${cmd.command} requires a name property`);
        if (cmd.command === 'set-output') this.outputs[name] = cmd.message;
        else this.state[name] = cmd.message;
        return;
      }
      case 'set-env':
      case 'add-path': {
        if (!this.o.allowUnsecureCommands) {
          const message = DISABLED.replace('%s', this.o.sink.masker.mask(text.trim())).replace('%c', cmd.command);
          this.commandErrors.push(message);
          this.annotate({ level: 'error', message });
          return this.show(stream, `##[error]${message}`);
        }
        if (cmd.command === 'add-path') this.path.push(cmd.message);
        else if (cmd.properties.name && isForbiddenEnvName(cmd.properties.name)) this.warn(`::set-env:: may not set ${cmd.properties.name}; it is ignored`);
        else if (cmd.properties.name) this.env[cmd.properties.name] = cmd.message;
        return;
      }
      default:
        return this.show(stream, text);
    }
  }

  private warn(message: string): void {
    this.annotate({ level: 'warning', message });
    this.show('stdout', `##[warning]${message}`);
  }
}
