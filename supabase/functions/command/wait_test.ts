import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { type CommandStatus, pollUntilTerminal } from "./wait.ts";

/** A fake clock: sleeping advances it, and the pauses are recorded. */
function clock() {
  let t = 0;
  const pauses: number[] = [];
  return {
    now: () => t,
    sleep: (ms: number) => {
      pauses.push(ms);
      t += ms;
      return Promise.resolve();
    },
    pauses,
  };
}

const status = (s: string): CommandStatus => ({ command_id: "c", status: s });

Deno.test("polling stops at the first terminal status, with a growing pause", async () => {
  const c = clock();
  const answers = ["pending", "dispatched", "dispatched", "processed"];
  const outcome = await pollUntilTerminal(() => Promise.resolve(status(answers.shift()!)), {
    waitMs: 10_000,
    ...c,
  });
  strictEqual(outcome.terminal, true);
  strictEqual(outcome.status?.status, "processed");
  strictEqual(outcome.polls, 4);
  deepStrictEqual(c.pauses, [20, 30, 45, 67.5]);
});

Deno.test("the pause is capped, and the wait is bounded by the deadline", async () => {
  const c = clock();
  const outcome = await pollUntilTerminal(() => Promise.resolve(status("pending")), {
    waitMs: 2_000,
    ...c,
  });
  strictEqual(outcome.terminal, false);
  strictEqual(outcome.status?.status, "pending");
  strictEqual(c.now(), 2_000);
  strictEqual(Math.max(...c.pauses), 250);
  strictEqual(outcome.polls, c.pauses.length);
  strictEqual(outcome.polls < 20, true);
});

Deno.test("an unreadable status keeps the last one read", async () => {
  const c = clock();
  const answers: Array<CommandStatus | null> = [status("dispatched"), null, null];
  const outcome = await pollUntilTerminal(() => Promise.resolve(answers.shift() ?? null), {
    waitMs: 100,
    ...c,
  });
  strictEqual(outcome.status?.status, "dispatched");
});

Deno.test("a zero first pause reads at once (a retried command that is already done)", async () => {
  const c = clock();
  await pollUntilTerminal(() => Promise.resolve(status("rejected")), {
    waitMs: 1000,
    firstDelayMs: 0,
    ...c,
  });
  deepStrictEqual(c.pauses, [0]);
});
