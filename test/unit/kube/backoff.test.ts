// Backoff delays (client-go's wait.Backoff + Jitter shape) and Retry-After parsing.
import assert from "node:assert/strict";
import { Backoff, backoffDelay, parseRetryAfter, type BackoffConfig } from "../../../src/lib/kube/backoff.js";

describe("backoff", () => {
  const cfg: BackoffConfig = { baseMs: 100, maxMs: 1000 };
  const cases: { name: string; attempt: number; config: BackoffConfig; random: number; want: number }[] = [
    { name: "first retry waits the base delay", attempt: 0, config: cfg, random: 0, want: 100 },
    { name: "doubles per attempt", attempt: 3, config: cfg, random: 0, want: 800 },
    { name: "is capped at maxMs", attempt: 4, config: cfg, random: 0, want: 1000 },
    { name: "stays capped for huge attempt counts", attempt: 5000, config: cfg, random: 0, want: 1000 },
    { name: "uses the factor given", attempt: 2, config: { ...cfg, factor: 3 }, random: 0, want: 900 },
    { name: "adds up to jitter x delay", attempt: 1, config: { ...cfg, jitter: 1 }, random: 0.5, want: 300 },
    { name: "jitter applies after the cap", attempt: 10, config: { ...cfg, jitter: 0.5 }, random: 0.999, want: 1500 },
    { name: "a negative attempt counts as the first", attempt: -2, config: cfg, random: 0, want: 100 },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(backoffDelay(c.attempt, c.config, () => c.random), c.want));
  }

  it("grows across next() calls and starts over after reset()", () => {
    const b = new Backoff(cfg, () => 0);
    assert.deepEqual([b.next(), b.next(), b.next()], [100, 200, 400]);
    assert.equal(b.attempts, 3);
    b.reset();
    assert.equal(b.next(), 100);
  });

  const retryAfter: { value: string | undefined; want: number | undefined }[] = [
    { value: "3", want: 3 },
    { value: " 0 ", want: 0 },
    { value: undefined, want: undefined },
    { value: "", want: undefined },
    { value: "soon", want: undefined },
    { value: "Thu, 01 Jan 2026 00:00:10 GMT", want: 10 },
    { value: "Wed, 31 Dec 2025 23:59:00 GMT", want: 0 },
  ];
  for (const c of retryAfter) {
    it(`reads Retry-After ${JSON.stringify(c.value)} as ${String(c.want)} seconds`, () => {
      assert.equal(parseRetryAfter(c.value, Date.UTC(2026, 0, 1)), c.want);
    });
  }
});
