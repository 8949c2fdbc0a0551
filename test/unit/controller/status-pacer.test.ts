// StatusPacer (src/controller/reconcile.ts): when one Service's status may be written, as a table of event and
// write times against what the pacer answers.
import assert from "node:assert/strict";
import { StatusPacer } from "../../../src/controller/reconcile.js";

type Step = { at: number; event?: true; write?: true; expectWait?: number };

function run(steps: Step[], pacing = {}): number[] {
  let now = 0;
  const pacer = new StatusPacer(() => now, pacing);
  const waits: number[] = [];
  for (const step of steps) {
    now = step.at;
    const wait = step.event ? pacer.event("ns/web") : pacer.waitMs("ns/web");
    waits.push(wait);
    if (step.expectWait !== undefined) assert.equal(wait, step.expectWait, `wait at ${step.at} ms`);
    if (step.write) pacer.wrote("ns/web");
  }
  return waits;
}

describe("controller: status pacing", () => {
  const rows: { name: string; steps: Step[] }[] = [
    {
      name: "a Service never written is written at once",
      steps: [{ at: 0, event: true, expectWait: 0 }],
    },
    {
      name: "inside a burst the pause triples after every write: 250 ms, 750 ms, 2.25 s",
      steps: [
        { at: 0, event: true, write: true, expectWait: 0 },
        { at: 100, event: true, expectWait: 150 },
        { at: 250, write: true, expectWait: 0 },
        { at: 300, event: true, expectWait: 700 },
        { at: 1000, write: true, expectWait: 0 },
        { at: 1500, event: true, expectWait: 1750 },
        { at: 3250, write: true, expectWait: 0 },
        { at: 3300, event: true, expectWait: 6700 },
      ],
    },
    {
      name: "the pause stops growing at maxMs",
      steps: [
        { at: 0, event: true, write: true },
        { at: 10, event: true, write: true },
        { at: 20, event: true, write: true },
        { at: 30, event: true, expectWait: 990 },
      ],
    },
    {
      name: "after a quiet spell (no event for quietMs) an isolated change is written at once, and the pause starts over",
      steps: [
        { at: 0, event: true, write: true },
        { at: 250, event: true, write: true },
        { at: 1000, event: true, write: true },
        { at: 1000 + 30_000, event: true, expectWait: 0 },
        { at: 1000 + 30_000, write: true },
        { at: 1000 + 30_100, event: true, expectWait: 150 },
      ],
    },
    {
      name: "events closer than quietMs keep the burst going even when the writes are far apart",
      steps: [
        { at: 0, event: true, write: true },
        { at: 250, event: true, write: true },
        { at: 1000, event: true, write: true },
        { at: 20_000, event: true },
        { at: 39_000, event: true, expectWait: 0 },
        { at: 39_000, write: true },
        { at: 39_100, event: true, expectWait: 6650 },
      ],
    },
  ];
  for (const row of rows) {
    it(row.name, () => {
      run(row.steps, row.name.includes("maxMs") ? { baseMs: 100, factor: 10, maxMs: 1000 } : {});
    });
  }

  it("a burst of pod events over three minutes costs at most 8 writes", () => {
    let now = 0;
    const pacer = new StatusPacer(() => now);
    let writes = 0;
    let due = 0;
    // One event every 100 ms for 180 s; a write whenever the pacer allows one.
    for (now = 0; now <= 180_000; now += 100) {
      const wait = pacer.event("ns/web");
      due = now + wait;
      if (wait === 0) {
        pacer.wrote("ns/web");
        writes++;
      }
    }
    assert.ok(due >= 0);
    assert.ok(writes <= 8, `${writes} writes`);
  });

  it("forgets a Service", () => {
    let now = 0;
    const pacer = new StatusPacer(() => now);
    pacer.wrote("ns/web");
    now = 10;
    assert.ok(pacer.waitMs("ns/web") > 0);
    pacer.forget("ns/web");
    assert.equal(pacer.waitMs("ns/web"), 0);
  });
});
