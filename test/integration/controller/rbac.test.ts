// The RBAC that `berth manifests` generates (src/manifests/rbac.ts, checked in as part of deploy/berth.yaml) grants
// exactly what the controller does: every request it makes on a full tour (create, port conflict with a foreign pod,
// Local policy, invalid annotation, type change, delete, leader election) is allowed by a rule, and every rule is
// used. The sandbox does not enforce RBAC, so this is checked against the requests the controller's own client
// recorded.
import assert from "node:assert/strict";
import { buildManifests, defaultManifestOptions } from "../../../src/manifests/manifests.js";
import {
  create, getObj, mergePatch, node, nodePath, startController, startEnv, service, svcPath, waitFor, waitForIngress, type Env,
  type Obj, type TestController,
} from "./support.js";

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

/** The RBAC verbs a recorded request needs (server-side apply is a patch, and a create when it creates). */
function needed(verb: string): string[] {
  return verb === "apply" ? ["patch", "create"] : [verb];
}

const GROUPS: Record<string, string> = {
  services: "", "services/status": "", nodes: "", pods: "", events: "", endpointslices: "discovery.k8s.io",
  daemonsets: "apps", leases: "coordination.k8s.io",
};

describe("controller RBAC (berth manifests, deploy/berth.yaml)", function () {
  let env: Env;
  let ctl: TestController | undefined;
  afterEach(async () => {
    await ctl?.stop();
    ctl = undefined;
    await env?.close();
  });

  it("allows every request the controller makes, and grants nothing it does not use", async () => {
    // The generator's objects as plain JSON (deploy/berth.yaml is checked to be exactly its output).
    const docs = JSON.parse(JSON.stringify(buildManifests(defaultManifestOptions("0.0.0-test")))) as Obj[];
    const roles = docs.filter((d) => d.kind === "ClusterRole" || d.kind === "Role");
    assert.equal(roles.length, 2);
    const rules: (Rule & { scope: string })[] = roles.flatMap((r) => (r.rules as Rule[]).map((rule) => ({ ...rule, scope: r.kind as string })));
    for (const b of docs.filter((d) => d.kind === "ClusterRoleBinding" || d.kind === "RoleBinding")) {
      assert.deepEqual(b.subjects, [{ kind: "ServiceAccount", name: "berth-controller", namespace: "berth-system" }]);
    }

    env = await startEnv();
    await create(env.client, nodePath(), node("n1", { internalIp: "192.0.2.51" }));
    await create(env.client, nodePath(), node("n2", { internalIp: "192.0.2.52" }));
    ctl = await startController(env, { identity: "rbac" });
    await waitFor("leads", async () => ctl?.controller.isLeader());
    await create(env.client, "/api/v1/namespaces/default/pods", {
      metadata: { name: "squatter" },
      spec: { nodeName: "n2", containers: [{ name: "c", image: "x", ports: [{ containerPort: 81, hostPort: 81 }] }] },
    });
    await create(env.client, "/api/v1/namespaces/default/services", service("web", { ports: [{ port: 81 }], externalTrafficPolicy: "Local" }));
    await create(env.client, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", {
      metadata: { name: "web-x", labels: { "kubernetes.io/service-name": "web" } }, addressType: "IPv4",
      endpoints: [{ addresses: ["10.42.0.9"], nodeName: "n1", conditions: { ready: true } }],
    });
    await waitForIngress(env.client, "web", ["192.0.2.51"]);
    await create(env.client, "/api/v1/namespaces/default/services", service("bad", { annotations: { "berth.dev/priority-class": "Not A Name" } }));
    await create(env.client, "/api/v1/namespaces/default/services", service("gone", { ports: [{ port: 82 }] }));
    await waitForIngress(env.client, "gone", ["192.0.2.51", "192.0.2.52"]);
    await mergePatch(env.client, svcPath("web"), { spec: { type: "ClusterIP" } });
    await env.client.del(svcPath("gone"));
    await waitFor("gone deleted", async () => (await getObj(env.client, svcPath("gone"))) === undefined);
    await waitFor("web cleaned", async () => !(await getObj(env.client, svcPath("web")))?.metadata.finalizers);
    await waitFor("bad reported", async () => ((await getObj(env.client, svcPath("bad")))?.status?.conditions ?? []).length > 0);
    await ctl.stop();
    const calls = ctl.calls;
    ctl = undefined;

    const used = new Set<Rule>();
    const missing: string[] = [];
    for (const call of calls) {
      const group = GROUPS[call.resource];
      assert.notEqual(group, undefined, `unexpected resource ${call.resource}`);
      for (const verb of needed(call.verb)) {
        const rule = rules.find((r) => r.apiGroups.includes(group as string) && r.resources.includes(call.resource) && r.verbs.includes(verb));
        if (rule) used.add(rule);
        else missing.push(`${verb} ${call.resource}`);
      }
    }
    assert.deepEqual([...new Set(missing)], [], "requests the RBAC does not allow");
    // Every rule is needed: each was used on this tour.
    const unused = rules.filter((r) => !used.has(r)).map((r) => `${r.scope} ${r.verbs.join(",")} ${r.resources.join(",")}`);
    assert.deepEqual(unused, [], "rules nothing used");
  });
});
