/**
 * Bad input from the user (a flag, an environment variable, a configuration value): the CLI prints its message as
 * one line and exits with code 2, having changed nothing.
 */
export class UsageError extends Error {
  override name = "UsageError";
}
