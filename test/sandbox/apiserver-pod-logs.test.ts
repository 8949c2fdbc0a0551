// `pods/<name>/log` (what `kubectl logs` asks for) over HTTP: the sandbox API server reads the container log files the
// sandbox kubelet writes, answering kube-apiserver's errors when there is no such log (several containers and none
// named, a container still waiting, no previous instance) and streaming appended lines with follow=true.
import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { useServer } from "./apiserver-client.js";

const dir = mkdtempSync(join(tmpdir(), "berth-pod-logs-"));
const PODS = "/api/v1/namespaces/default/pods";

describe("sandbox apiserver: pods/<name>/log", () => {
  const { server, client } = useServer({ podLogDir: dir });
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function pod(name: string, containers: string[], statuses: Record<string, unknown>[]): Promise<void> {
    const created = await client().post(PODS, { apiVersion: "v1", kind: "Pod", metadata: { name }, spec: { containers: containers.map((c) => ({ name: c, image: "nginx" })) } });
    assert.equal(created.status, 201, created.text);
    const patched = await client().req("PATCH", `${PODS}/${name}/status`, { status: { phase: "Running", containerStatuses: statuses } },
      { "Content-Type": "application/merge-patch+json" });
    assert.equal(patched.status, 200, patched.text);
  }
  const running = (name: string, extra: Record<string, unknown> = {}) => ({ name, image: "nginx", imageID: "", ready: true, restartCount: 0, state: { running: {} }, ...extra });

  it("answers the container's log, its last lines with tailLines, the previous instance's with previous=true", async () => {
    await pod("web", ["nginx"], [running("nginx", { restartCount: 1, lastState: { terminated: { exitCode: 1 } } })]);
    writeFileSync(join(dir, "default_web_nginx.log"), "one\ntwo\nthree\n");
    writeFileSync(join(dir, "default_web_nginx.log.previous"), "before the restart\n");
    assert.equal((await client().get(`${PODS}/web/log`)).text, "one\ntwo\nthree\n");
    assert.equal((await client().get(`${PODS}/web/log?tailLines=2`)).text, "two\nthree\n");
    assert.equal((await client().get(`${PODS}/web/log?previous=true`)).text, "before the restart\n");
  });

  it("answers 400 with kube's messages when no log can be named or there is none yet", async () => {
    await pod("two", ["a", "b"], [running("a"), { name: "b", image: "nginx", imageID: "", ready: false, restartCount: 0, state: { waiting: { reason: "ContainerCreating" } } }]);
    const unnamed = await client().get(`${PODS}/two/log`);
    assert.equal(unnamed.status, 400);
    assert.equal(unnamed.body.message, "a container name must be specified for pod two, choose one of: [a b]");
    const waiting = await client().get(`${PODS}/two/log?container=b`);
    assert.equal(waiting.body.message, 'container "b" in pod "two" is waiting to start: ContainerCreating');
    const previous = await client().get(`${PODS}/two/log?container=a&previous=true`);
    assert.equal(previous.body.message, 'previous terminated container "a" in pod "two" not found');
    assert.equal((await client().get(`${PODS}/two/log?container=c`)).body.message, "container c is not valid for pod two");
  });

  it("streams what is appended with follow=true until the pod is gone", async () => {
    await pod("tailed", ["nginx"], [running("nginx")]);
    const file = join(dir, "default_tailed_nginx.log");
    writeFileSync(file, "first\n");
    const res = await fetch(`${server().url}${PODS}/tailed/log?follow=true`, { headers: { Authorization: `Bearer ${server().token}` } });
    assert.equal(res.status, 200);
    setTimeout(() => appendFileSync(file, "second\n"), 300);
    setTimeout(() => void client().req("DELETE", `${PODS}/tailed?gracePeriodSeconds=0`), 900);
    assert.equal(await res.text(), "first\nsecond\n");
  });
});
