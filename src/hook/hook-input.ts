/**
 * The JSON GitHub's runner writes to a container hook's stdin (actions/runner
 * src/Runner.Worker/Container/ContainerHooks/HookInput.cs): `command`, `responseFile`,
 * `state` and `args`. It comes from the runner, which takes it from the workflow: every field
 * is checked here, by type and size, before anything acts on it.
 */
export type HookCommand = 'prepare_job' | 'cleanup_job' | 'run_script_step' | 'run_container_step';

export interface MountVolume {
  sourceVolumePath: string;
  targetVolumePath: string;
  readOnly: boolean;
}

/** HookContainer of HookInput.cs: the job container, a service, or a container step. */
export interface HookContainer {
  image?: string;
  dockerfile?: string;
  entryPoint?: string;
  entryPointArgs: string[];
  workingDirectory?: string;
  createOptions?: string;
  environmentVariables: Record<string, string>;
  portMappings: string[];
  systemMountVolumes: MountVolume[];
  userMountVolumes: MountVolume[];
  /** services only: the name steps reach it by. */
  contextName?: string;
}

export interface ScriptStepArgs {
  entryPoint: string;
  entryPointArgs: string[];
  environmentVariables: Record<string, string>;
  /** PATH entries to put first, joined with ':' by the runner (ContainerHookManager.GetPrependPath). */
  prependPath: string[];
  workingDirectory: string;
}

export type HookInput =
  | { command: 'prepare_job'; responseFile: string; state: unknown; args: { container?: HookContainer; services: HookContainer[] } }
  | { command: 'cleanup_job'; responseFile?: string; state: unknown }
  | { command: 'run_script_step'; responseFile?: string; state: unknown; args: ScriptStepArgs }
  | { command: 'run_container_step'; responseFile?: string; state: unknown; args: HookContainer };

/** Budgets of the input (the runner's own are larger; a job never needs more). */
export const HOOK_INPUT_LIMITS = { maxBytes: 8 * 1024 * 1024, maxEnv: 1000, maxEnvBytes: 1024 * 1024, maxArgs: 1000, maxServices: 32, maxMounts: 64 } as const;

type Obj = Record<string, unknown>;

class InputError extends Error {}

const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);

function str(v: unknown, where: string, optional = false): string | undefined {
  if (v === undefined || v === null) {
    if (optional) return undefined;
    throw new InputError(`${where} is required`);
  }
  if (typeof v !== 'string') throw new InputError(`${where} must be a string`);
  if (v.includes('\0')) throw new InputError(`${where} contains a NUL byte`);
  return v;
}

function strList(v: unknown, where: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new InputError(`${where} must be a list`);
  if (v.length > HOOK_INPUT_LIMITS.maxArgs) throw new InputError(`${where} has ${v.length} entries; the limit is ${HOOK_INPUT_LIMITS.maxArgs}`);
  return v.map((x, i) => str(x, `${where}[${i}]`)!);
}

function env(v: unknown, where: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) throw new InputError(`${where} must be a mapping`);
  const entries = Object.entries(v);
  if (entries.length > HOOK_INPUT_LIMITS.maxEnv) throw new InputError(`${where} has ${entries.length} variables; the limit is ${HOOK_INPUT_LIMITS.maxEnv}`);
  let bytes = 0;
  const out: Record<string, string> = {};
  for (const [k, x] of entries) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new InputError(`${where}: '${k.slice(0, 64)}' is not a variable name`);
    const value = x === null || x === undefined ? '' : str(x, `${where}.${k}`)!;
    bytes += k.length + value.length;
    out[k] = value;
  }
  if (bytes > HOOK_INPUT_LIMITS.maxEnvBytes) throw new InputError(`${where} is ${bytes} bytes; the limit is ${HOOK_INPUT_LIMITS.maxEnvBytes}`);
  return out;
}

function mounts(v: unknown, where: string): MountVolume[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new InputError(`${where} must be a list`);
  if (v.length > HOOK_INPUT_LIMITS.maxMounts) throw new InputError(`${where} has ${v.length} entries; the limit is ${HOOK_INPUT_LIMITS.maxMounts}`);
  return v.map((m, i) => {
    if (!isObj(m)) throw new InputError(`${where}[${i}] must be a mapping`);
    return { sourceVolumePath: str(m.sourceVolumePath, `${where}[${i}].sourceVolumePath`)!, targetVolumePath: str(m.targetVolumePath, `${where}[${i}].targetVolumePath`)!, readOnly: m.readOnly === true };
  });
}

function container(v: unknown, where: string): HookContainer {
  if (!isObj(v)) throw new InputError(`${where} must be a mapping`);
  return {
    image: str(v.image, `${where}.image`, true),
    dockerfile: str(v.dockerfile, `${where}.dockerfile`, true),
    entryPoint: str(v.entryPoint, `${where}.entryPoint`, true),
    // HookContainer splits the workflow's args on spaces; empty pieces are the runner's, not the user's.
    entryPointArgs: strList(v.entryPointArgs, `${where}.entryPointArgs`).filter((a) => a !== ''),
    workingDirectory: str(v.workingDirectory, `${where}.workingDirectory`, true),
    createOptions: str(v.createOptions, `${where}.createOptions`, true),
    environmentVariables: env(v.environmentVariables, `${where}.environmentVariables`),
    portMappings: strList(v.portMappings, `${where}.portMappings`),
    systemMountVolumes: mounts(v.systemMountVolumes, `${where}.systemMountVolumes`),
    userMountVolumes: mounts(v.userMountVolumes, `${where}.userMountVolumes`),
    contextName: str(v.contextName, `${where}.contextName`, true),
  };
}

/** The hook's stdin → a checked input, or the reason it is refused (never throws). */
export function parseHookInput(text: string): { value: HookInput } | { error: string } {
  if (Buffer.byteLength(text) > HOOK_INPUT_LIMITS.maxBytes) return { error: `the hook input is larger than ${HOOK_INPUT_LIMITS.maxBytes} bytes` };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return { error: `the hook input is not JSON: ${(e as Error).message}` };
  }
  try {
    if (!isObj(raw)) throw new InputError('the hook input must be a JSON object');
    const command = str(raw.command, 'command');
    const responseFile = str(raw.responseFile, 'responseFile', command !== 'prepare_job');
    const state = raw.state ?? {};
    const args = raw.args;
    switch (command) {
      case 'prepare_job': {
        if (!isObj(args)) throw new InputError('args must be a mapping');
        const services = args.services === undefined || args.services === null ? [] : args.services;
        if (!Array.isArray(services)) throw new InputError('args.services must be a list');
        if (services.length > HOOK_INPUT_LIMITS.maxServices) throw new InputError(`args.services has ${services.length} entries; the limit is ${HOOK_INPUT_LIMITS.maxServices}`);
        const c = args.container === undefined || args.container === null ? undefined : container(args.container, 'args.container');
        return { value: { command, responseFile: responseFile!, state, args: { container: c?.image ? c : undefined, services: services.map((s, i) => container(s, `args.services[${i}]`)) } } };
      }
      case 'cleanup_job':
        return { value: { command, responseFile, state } };
      case 'run_script_step': {
        if (!isObj(args)) throw new InputError('args must be a mapping');
        const prepend = args.prependPath;
        const prependPath = typeof prepend === 'string' ? prepend.split(':').filter(Boolean) : strList(prepend, 'args.prependPath');
        return {
          value: {
            command,
            responseFile,
            state,
            args: { entryPoint: str(args.entryPoint, 'args.entryPoint')!, entryPointArgs: strList(args.entryPointArgs, 'args.entryPointArgs').filter((a) => a !== ''), environmentVariables: env(args.environmentVariables, 'args.environmentVariables'), prependPath, workingDirectory: str(args.workingDirectory, 'args.workingDirectory')! },
          },
        };
      }
      case 'run_container_step':
        return { value: { command, responseFile, state, args: container(args, 'args') } };
      default:
        throw new InputError(`command '${String(command).slice(0, 40)}' is not one of prepare_job, cleanup_job, run_script_step, run_container_step`);
    }
  } catch (e) {
    if (e instanceof InputError) return { error: e.message };
    throw e;
  }
}
