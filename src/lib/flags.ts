// Commands validate their raw flag values with a zod schema; this turns the first problem into the one-line
// UsageError the CLI prints (exit code 2), naming the flag as the user typed it (workerCount -> --worker-count).
import type { z } from "zod";
import { UsageError } from "./errors.js";

export function parseFlags<S extends z.ZodType>(schema: S, raw: unknown): z.output<S> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const flag = `--${String(issue?.path[0] ?? "").replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  const message = issue?.message ?? "invalid value";
  throw new UsageError(message.startsWith("--") ? message : `${flag}: ${message}`);
}
