/**
 * Waiting for a command's outcome: poll command_status with a growing pause
 * (from 20 ms, x1.5, at most 250 ms) until the status is terminal or the time
 * the caller allowed has run out. Starting short catches the common case (the
 * pump picks a lone command up within a few tens of milliseconds); the cap
 * bounds the polls, so a 10 s wait costs at most about 50 status reads.
 */

export const TERMINAL: ReadonlySet<string> = new Set(["processed", "rejected", "failed"]);

export interface CommandStatus {
  command_id: string;
  command_type?: string;
  status: string;
  result?: unknown;
  error?: unknown;
  created_at?: string;
  updated_at?: string;
}

export interface PollOptions {
  waitMs: number;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  firstDelayMs?: number;
  factor?: number;
  maxDelayMs?: number;
}

export interface PollOutcome {
  /** The last status read (null when none could be read). */
  status: CommandStatus | null;
  terminal: boolean;
  polls: number;
}

export function isCommandStatus(value: unknown): value is CommandStatus {
  return typeof value === "object" && value !== null &&
    typeof (value as CommandStatus).status === "string" &&
    typeof (value as CommandStatus).command_id === "string";
}

/**
 * Poll until terminal or out of time. The first read comes after the first
 * pause; the last one at the deadline. Errors of `read` propagate.
 */
export async function pollUntilTerminal(
  read: () => Promise<CommandStatus | null>,
  options: PollOptions,
): Promise<PollOutcome> {
  const { now, sleep } = options;
  const factor = options.factor ?? 1.5;
  const maxDelay = options.maxDelayMs ?? 250;
  const deadline = now() + options.waitMs;
  let delay = options.firstDelayMs ?? 20;
  let status: CommandStatus | null = null;
  let polls = 0;
  for (;;) {
    const remaining = deadline - now();
    if (remaining <= 0) return { status, terminal: false, polls };
    await sleep(Math.min(delay, remaining));
    status = (await read()) ?? status;
    polls++;
    if (status !== null && TERMINAL.has(status.status)) return { status, terminal: true, polls };
    delay = Math.min(delay * factor, maxDelay);
  }
}
