// The sandbox API server's request log: a bounded ring, oldest first, and a listener for every ending request.
import assert from "node:assert/strict";
import { RequestLog, type LoggedRequest } from "../../../src/sandbox/apiserver/request-log.js";

describe("sandbox API server request log", () => {
  it("keeps the last `limit` requests, oldest first, however often it wrapped", () => {
    const cases: { limit: number; arrivals: number; kept: number[] }[] = [
      { limit: 3, arrivals: 2, kept: [1, 2] },
      { limit: 3, arrivals: 3, kept: [1, 2, 3] },
      { limit: 3, arrivals: 4, kept: [2, 3, 4] },
      { limit: 3, arrivals: 8, kept: [6, 7, 8] },
      { limit: 1, arrivals: 5, kept: [5] },
    ];
    for (const c of cases) {
      const log = new RequestLog(c.limit);
      for (let i = 1; i <= c.arrivals; i++) log.arrive("GET", `/p${i}`, "test");
      assert.deepEqual(log.entries().map((e) => Number(e.path.slice(2))), c.kept, JSON.stringify(c));
    }
  });

  it("starts empty again after clear, and keeps filling in order", () => {
    const log = new RequestLog(2);
    for (let i = 1; i <= 3; i++) log.arrive("GET", `/p${i}`, "test");
    log.clear();
    assert.deepEqual(log.entries(), []);
    log.arrive("GET", "/a", "test");
    log.arrive("GET", "/b", "test");
    log.arrive("GET", "/c", "test");
    assert.deepEqual(log.entries().map((e) => e.path), ["/b", "/c"]);
  });

  it("tells a listener about each request as it ends, once, with a copy, until it stops listening", () => {
    const log = new RequestLog(1);
    const seen: LoggedRequest[] = [];
    const stop = log.onEnd((e) => seen.push(e));
    const a = log.arrive("PATCH", "/a", "test");
    const b = log.arrive("POST", "/b", "test");
    log.end(b, "answered", 201);
    log.end(a, "client-gone", undefined);
    log.end(a, "answered", 200);
    // The ring holds only b by now; the listener still heard of a.
    assert.deepEqual(seen.map((e) => [e.path, e.outcome, e.code]), [["/b", "answered", 201], ["/a", "client-gone", undefined]]);
    (seen[0] as LoggedRequest).path = "/changed";
    assert.equal(log.entries()[0]?.path, "/b");
    stop();
    log.end(log.arrive("GET", "/c", "test"), "answered", 200);
    assert.equal(seen.length, 2);
  });
});
