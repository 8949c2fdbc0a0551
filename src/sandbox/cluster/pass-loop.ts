// How the sandbox's controller stand-ins run: level-based passes over their caches, never two at once. kick() asks
// for a pass (after delayMs, which gathers the burst of watch events one write causes); a kick during a pass makes
// the loop run once more when it ends, so no change is missed and none causes a pass of its own. A pass that throws
// is logged and retried after retryMs.
export class PassLoop {
  private stopped = false;
  private dirty = false;
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pass: () => Promise<void>,
    private readonly onError: (error: unknown) => void,
    private readonly options: { delayMs?: number; retryMs?: number } = {},
  ) {}

  kick(delayMs = this.options.delayMs ?? 0): void {
    if (this.stopped) return;
    this.dirty = true;
    if (this.timer || this.running) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.runNow();
    }, delayMs);
  }

  /** Runs a pass now (or joins the one running) and resolves when the loop is idle. */
  runNow(): Promise<void> {
    this.dirty = true;
    this.running ??= this.runPasses().finally(() => {
      this.running = undefined;
      if (this.dirty) this.kick();
    });
    return this.running;
  }

  /** No pass starts after this; resolves once the one running (if any) has ended. */
  stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    return this.running ?? Promise.resolve();
  }

  private async runPasses(): Promise<void> {
    while (this.dirty && !this.stopped) {
      this.dirty = false;
      try {
        await this.pass();
      } catch (e) {
        this.onError(e);
        await new Promise((r) => setTimeout(r, this.options.retryMs ?? 500));
        this.dirty = true;
      }
    }
  }
}
