// Puts the addresses this node announces on its interfaces, keeps them alive, and tells the neighbours.
// - Takeover: one `ip -force -batch -` adds every new address (lifetimes valid_lft = lifetimeSec), then a
//   gratuitous ARP / unsolicited NA goes out at once, then a burst, then a periodic refresh (announce-plan.ts).
// - Renewal: one long-lived `ip -force -batch -` gets a `replace` line per address every renewMs; `ip` applies
//   lines as they arrive on stdin. If this process dies or hangs, nothing renews and the kernel removes every
//   address lifetimeSec later: a dead speaker cannot leave a VIP behind (kernel fact checked on 6.18, issue 11).
// - Withdrawal: `address del` at once (losing ownership, graceful shutdown).
// It never touches an address it did not add, a sysctl, or a route. See docs/design/0015-how-the-speaker-announces.md.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { realClock, type Clock, type TimerHandle } from "../lib/kube/clock.js";
import { noLog, type LogFn } from "../lib/kube/client.js";
import { runChecked, type CommandRunner } from "../lib/exec.js";
import { familyOf } from "../lib/addresses.js";
import {
  addressLine,
  chooseInterface,
  deleteLine,
  gratuitousCommand,
  nextGratuitousDelay,
  parseLinks,
  type GratuitousConfig,
} from "./announce-plan.js";

/** One address this node should announce, and where the pool allows it. */
export interface Announcement {
  ip: string;
  /** The pool's `announce.interfaces`; empty or absent: the interface on the address's prefix. */
  interfaces?: readonly string[];
}

export interface AnnouncerHooks {
  /** One gratuitous ARP / unsolicited NA sent (ok) or failed. */
  gratuitousSent?(family: "ipv4" | "ipv6", ok: boolean): void;
  /** An address we own could not be placed (reason: noAllowedInterface, noInterfaceOnPrefix, addFailed). */
  announceFailed?(ip: string, reason: string): void;
}

export interface AnnouncerConfig extends GratuitousConfig {
  lifetimeSec: number;
  renewMs: number;
  /**
   * How long an address this node no longer owns stays on (renewed, no more gratuitous packets) before it is
   * removed: make before break. The new owner's first gratuitous packet reaches clients tens of ms after the
   * election; until then they still send to us, and dropping those is the whole outage of a planned move (a node
   * returning and winning its addresses back). Short, because two nodes hold the address meanwhile.
   */
  lingerMs: number;
}

export const DEFAULT_ANNOUNCER_CONFIG: AnnouncerConfig = {
  lifetimeSec: 3,
  renewMs: 1000,
  burstCount: 4,
  burstIntervalMs: 500,
  refreshIntervalMs: 30_000,
  lingerMs: 300,
};

interface Owned {
  ifname: string;
  mac?: string;
  /** Gratuitous packets sent since the last takeover. */
  sent: number;
  timer?: TimerHandle;
  /** Set while lingering after losing ownership: the removal. */
  release?: TimerHandle;
}

export interface AnnouncerOptions {
  runner: CommandRunner;
  config?: AnnouncerConfig;
  clock?: Clock;
  log?: LogFn;
  hooks?: AnnouncerHooks;
}

export class Announcer {
  private readonly owned = new Map<string, Owned>();
  private readonly config: AnnouncerConfig;
  private readonly clock: Clock;
  private readonly log: LogFn;
  private batch?: ChildProcessWithoutNullStreams;
  private renewTimer?: TimerHandle;
  private stopped = false;
  /** apply() calls run one at a time, in order. */
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly options: AnnouncerOptions) {
    this.config = options.config ?? DEFAULT_ANNOUNCER_CONFIG;
    this.clock = options.clock ?? realClock;
    this.log = options.log ?? noLog;
  }

  start(): void {
    this.renew();
  }

  /** The addresses this node announces now (lingering ones not included), and where. */
  announced(): Map<string, string> {
    return new Map([...this.owned].filter(([, o]) => o.release === undefined).map(([ip, o]) => [ip, o.ifname]));
  }

  /** Makes the announced set exactly `desired`; resolves once new addresses are on and their first packet is out. */
  apply(desired: readonly Announcement[]): Promise<void> {
    const run = this.chain.then(() => this.applyNow(desired));
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Sends the takeover sequence again for every address (after a partition heals, neighbours may point elsewhere). */
  reannounce(): void {
    for (const [ip, owned] of this.owned) {
      // A lingering address belongs to another node now: a packet from us would pull its clients back here.
      if (owned.release !== undefined) continue;
      owned.timer?.cancel();
      owned.sent = 0;
      this.scheduleGratuitous(ip, owned);
    }
  }

  /** Stops renewing; with `withdraw`, removes every address now (graceful), else leaves them to expire. */
  async stop(withdraw: boolean): Promise<void> {
    this.stopped = true;
    this.renewTimer?.cancel();
    for (const owned of this.owned.values()) {
      owned.timer?.cancel();
      owned.release?.cancel();
    }
    await this.chain;
    if (withdraw && this.owned.size > 0) {
      const lines = [...this.owned].map(([ip, o]) => deleteLine(ip, o.ifname));
      this.owned.clear();
      await this.ipBatch(lines).catch((err: Error) => this.log("warn", "could not remove addresses", { error: err.message }));
    }
    this.batch?.stdin.end();
    this.batch = undefined;
  }

  private async applyNow(desired: readonly Announcement[]): Promise<void> {
    if (this.stopped) return;
    const want = new Map(desired.map((a) => [a.ip, a]));
    const removals: string[] = [];
    for (const [ip, owned] of this.owned) {
      if (want.has(ip)) {
        if (owned.release !== undefined) {
          // Won back while lingering: neighbours may have moved meanwhile, so the takeover sequence again.
          owned.release.cancel();
          delete owned.release;
          owned.timer?.cancel();
          owned.sent = 0;
          this.scheduleGratuitous(ip, owned);
        }
        continue;
      }
      if (owned.release !== undefined) continue;
      owned.timer?.cancel();
      if (this.config.lingerMs > 0) {
        this.log("info", "releasing address", { ip, interface: owned.ifname, afterMs: this.config.lingerMs });
        owned.release = this.clock.setTimer(this.config.lingerMs, () => {
          this.chain = this.chain.then(() => this.releaseNow(ip, owned)).catch(() => undefined);
        });
        continue;
      }
      this.owned.delete(ip);
      removals.push(deleteLine(ip, owned.ifname));
      this.log("info", "withdrawing address", { ip, interface: owned.ifname });
    }
    const added = desired.filter((a) => !this.owned.has(a.ip));
    const lines: string[] = [...removals];
    const placed: [string, Owned][] = [];
    if (added.length > 0) {
      const links = parseLinks((await runChecked(this.options.runner, "ip", ["-j", "address", "show"])).stdout);
      for (const a of added) {
        const choice = chooseInterface(a.ip, a.interfaces, links);
        if (choice.ifname === undefined) {
          this.log("warn", "cannot announce: no interface for the address", { ip: a.ip, reason: choice.why, allowed: a.interfaces });
          this.options.hooks?.announceFailed?.(a.ip, choice.why);
          continue;
        }
        lines.push(addressLine(a.ip, choice.ifname, this.config));
        placed.push([a.ip, { ifname: choice.ifname, ...(choice.mac ? { mac: choice.mac } : {}), sent: 0 }]);
      }
    }
    if (lines.length === 0) return;
    try {
      await this.ipBatch(lines);
    } catch (err) {
      // -force applies every line it can; the message names the one that failed. Addresses not on the interface are
      // retried by the next apply() (the caller re-applies on every membership or cluster change and periodically).
      this.log("warn", "ip batch failed", { error: (err as Error).message });
    }
    if (this.stopped) return;
    for (const [ip, owned] of placed) {
      this.owned.set(ip, owned);
      this.log("info", "announcing address", { ip, interface: owned.ifname });
      this.scheduleGratuitous(ip, owned);
    }
  }

  private async releaseNow(ip: string, owned: Owned): Promise<void> {
    if (this.stopped || this.owned.get(ip) !== owned || owned.release === undefined) return;
    this.owned.delete(ip);
    this.log("info", "withdrawing address", { ip, interface: owned.ifname });
    await this.ipBatch([deleteLine(ip, owned.ifname)]).catch((err: Error) => this.log("warn", "could not remove address", { ip, error: err.message }));
  }

  private scheduleGratuitous(ip: string, owned: Owned): void {
    const delay = nextGratuitousDelay(owned.sent, this.config);
    if (delay === undefined || this.stopped) return;
    const send = (): void => {
      if (this.stopped || this.owned.get(ip) !== owned) return;
      owned.sent++;
      void this.sendGratuitous(ip, owned);
      this.scheduleGratuitous(ip, owned);
    };
    if (delay === 0) send();
    else owned.timer = this.clock.setTimer(delay, send);
  }

  private async sendGratuitous(ip: string, owned: Owned): Promise<void> {
    const { file, args } = gratuitousCommand(ip, owned.ifname, owned.mac);
    const result = await this.options.runner.run(file, args, { timeoutMs: 2000 });
    // arping exits 1 when no reply came, which is the normal outcome of an unsolicited ARP.
    const ok = result.exitCode === 0 || (file === "arping" && result.exitCode === 1);
    this.options.hooks?.gratuitousSent?.(familyOf(ip), ok);
    if (!ok) this.log("warn", "gratuitous packet failed", { ip, command: result.command, exitCode: result.exitCode, stderr: result.stderr.trim() });
  }

  private async ipBatch(lines: readonly string[]): Promise<void> {
    await runChecked(this.options.runner, "ip", ["-force", "-batch", "-"], { input: lines.join("\n") + "\n", timeoutMs: 10_000 });
  }

  /** Writes a renewal line per owned address to the long-lived `ip`, restarting it if it died. */
  private renew(): void {
    if (this.stopped) return;
    if (this.owned.size > 0) {
      const batch = this.renewer();
      batch.stdin.write([...this.owned].map(([ip, o]) => addressLine(ip, o.ifname, this.config)).join("\n") + "\n");
    }
    this.renewTimer = this.clock.setTimer(this.config.renewMs, () => this.renew());
  }

  private renewer(): ChildProcessWithoutNullStreams {
    if (this.batch !== undefined && this.batch.exitCode === null && !this.batch.killed) return this.batch;
    const child = spawn("ip", ["-force", "-batch", "-"], { stdio: ["pipe", "pipe", "pipe"] });
    child.stdin.on("error", () => undefined);
    child.stdout.resume();
    child.stderr.on("data", (chunk: Buffer) => this.log("warn", "address renewal failed", { stderr: chunk.toString("utf8").trim() }));
    child.on("error", (err) => this.log("error", "cannot run ip for address renewal", { error: err.message }));
    child.on("exit", (code) => {
      if (!this.stopped) this.log("warn", "address renewal process exited; restarting it on the next renewal", { code });
    });
    this.batch = child;
    return child;
  }
}
