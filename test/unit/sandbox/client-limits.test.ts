// The stand-ins' copy of client-go's token bucket: full at the start, refilled at qps, never above burst.
import assert from "node:assert/strict";
import { CONTROLLER_MANAGER_LIMIT, TokenBucket } from "../../../src/sandbox/cluster/client-limits.js";

describe("TokenBucket (client-go's client-side rate limit, with an explicit clock)", () => {
  const takes = (bucket: TokenBucket, at: number, n: number): number => {
    let taken = 0;
    for (let i = 0; i < n; i++) if (bucket.tryTake(at)) taken++;
    return taken;
  };

  it("starts full: the burst goes at once, the next token after 1/qps", () => {
    const b = new TokenBucket({ qps: 20, burst: 30 }, 1000);
    assert.equal(takes(b, 1000, 100), 30);
    assert.equal(b.nextTokenAt(1000), 1050);
    assert.equal(b.tryTake(1049), false);
    assert.equal(b.tryTake(1050), true);
    assert.equal(b.tryTake(1050), false);
  });

  it("refills at qps up to the burst, not beyond", () => {
    const b = new TokenBucket({ qps: 20, burst: 30 }, 0);
    takes(b, 0, 30);
    assert.equal(takes(b, 500, 100), 10);
    assert.equal(takes(b, 60_000, 100), 30);
  });

  it("keeps any rate over a long run: N seconds give burst + qps*N tokens", () => {
    const b = new TokenBucket(CONTROLLER_MANAGER_LIMIT, 0);
    let taken = 0;
    for (let t = 0; t <= 10_000; t += 7) taken += takes(b, t, 5);
    // 10 s (to the last step at 9,996 ms): 30 + 20 * 9.996 = 229.9 -> 229 whole tokens.
    assert.equal(taken, 229);
  });

  it("nextTokenAt is now when a token is there, and counts partial refills", () => {
    const b = new TokenBucket({ qps: 3, burst: 1 }, 0);
    assert.equal(b.nextTokenAt(0), 0);
    assert.equal(b.tryTake(0), true);
    assert.equal(b.nextTokenAt(0), 334);
    assert.equal(b.nextTokenAt(200), 334);
    assert.equal(b.tryTake(333), false);
    assert.equal(b.tryTake(334), true);
  });

  it("a clock that goes back refills nothing and loses nothing", () => {
    const b = new TokenBucket({ qps: 10, burst: 2 }, 1000);
    assert.equal(b.tryTake(1000), true);
    assert.equal(b.tryTake(500), true);
    assert.equal(b.tryTake(900), false);
    assert.equal(b.tryTake(1100), true);
  });

  it("refuses a limit that could never give a token", () => {
    assert.throws(() => new TokenBucket({ qps: 0, burst: 10 }, 0), /qps > 0 and burst >= 1/);
    assert.throws(() => new TokenBucket({ qps: 5, burst: 0 }, 0), /qps > 0 and burst >= 1/);
  });
});
