// The RBAC that `berth manifests` generates (src/manifests/rbac.ts, checked in as part of deploy/berth.yaml) grants
// exactly what the controller does: every request it makes on a full tour (create, port conflict with a foreign pod,
// Local policy, VIP mode, invalid annotation, type change, delete, leader election) is allowed by a rule, and every rule is
// used. The sandbox does not enforce RBAC, so the controller talks to it through a recording proxy and each request is
// authorized here as kube-apiserver's RBAC authorizer would: its verb, API group, resource and subresource, its
// namespace (the Role only counts in berth-system, the ClusterRole everywhere) and its name (resourceNames).
import assert from "node:assert/strict";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
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

/** What RBAC sees of one request (k8s.io/apiserver's RequestInfo): the attributes its rules match on. */
interface RequestAttributes {
  verbs: string[];
  apiGroup: string;
  resource: string;
  namespace?: string;
  name?: string;
}

/**
 * RequestInfoFactory's reading of a resource request: /api/v1/... or /apis/GROUP/VERSION/..., then
 * [namespaces/NS/]RESOURCE[/NAME[/SUBRESOURCE]]; the verb from the method (GET is get, list or watch). A server-side
 * apply that creates its object (201) is authorized as patch and as create.
 */
function attributes(method: string, url: string, status: number): RequestAttributes {
  const { pathname, searchParams } = new URL(url, "http://x");
  const parts = pathname.split("/").filter((p) => p !== "");
  const apiGroup = parts[0] === "api" ? "" : (parts[1] as string);
  let rest = parts.slice(parts[0] === "api" ? 2 : 3);
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, subresource] = rest as [string, string | undefined, string | undefined];
  const watch = searchParams.get("watch") === "true" || searchParams.get("watch") === "1";
  const verb = { GET: name ? "get" : watch ? "watch" : "list", POST: "create", PUT: "update", PATCH: "patch", DELETE: name ? "delete" : "deletecollection" }[method];
  assert.ok(verb, `${method} ${url}`);
  return {
    verbs: method === "PATCH" && status === 201 ? ["patch", "create"] : [verb],
    apiGroup,
    resource: subresource ? `${resource}/${subresource}` : resource,
    ...(namespace !== undefined ? { namespace } : {}),
    ...(name !== undefined ? { name } : {}),
  };
}

/** rbac/v1 RuleAllows: group, resource, verb and, when the rule names objects, the object's name. */
function allows(rule: Rule, a: RequestAttributes, verb: string): boolean {
  return rule.apiGroups.includes(a.apiGroup) && rule.resources.includes(a.resource) && rule.verbs.includes(verb) &&
    (rule.resourceNames === undefined || (a.name !== undefined && rule.resourceNames.includes(a.name)));
}

interface Recorder {
  url: string;
  requests: { method: string; url: string; status: number }[];
  close(): Promise<void>;
}

/** An HTTP proxy in front of the API server that records every request and its status (watches stream through). */
async function recordingProxy(target: string): Promise<Recorder> {
  const requests: Recorder["requests"] = [];
  const upstream = new URL(target);
  const server: Server = createServer((req, res) => {
    const out = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      requests.push({ method: req.method ?? "", url: req.url ?? "", status: up.statusCode ?? 0 });
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on("error", () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

describe("controller RBAC (berth manifests, deploy/berth.yaml)", function () {
  let env: Env;
  let ctl: TestController | undefined;
  let proxy: Recorder | undefined;
  afterEach(async () => {
    await ctl?.stop();
    ctl = undefined;
    await proxy?.close();
    await env?.close();
  });

  it("allows every request the controller makes, and grants nothing it does not use", async () => {
    // The generator's objects as plain JSON (deploy/berth.yaml is checked to be exactly its output).
    const docs = JSON.parse(JSON.stringify(buildManifests(defaultManifestOptions("0.0.0-test")))) as Obj[];
    // The controller's roles: those bound to its ServiceAccount (the speaker has its own, tested with the speaker).
    const controllerSubject = { kind: "ServiceAccount", name: "berth-controller", namespace: "berth-system" };
    const bindings = docs.filter((d) => (d.kind === "ClusterRoleBinding" || d.kind === "RoleBinding") &&
      (d.subjects as Obj[]).some((s) => s.kind === controllerSubject.kind && s.name === controllerSubject.name));
    const roles = docs.filter((d) => (d.kind === "ClusterRole" || d.kind === "Role") &&
      bindings.some((b) => b.roleRef.kind === d.kind && b.roleRef.name === d.metadata.name));
    assert.equal(roles.length, 2);
    const rules: (Rule & { scope: string; namespace?: string })[] = roles.flatMap((r) =>
      (r.rules as Rule[]).map((rule) => ({ ...rule, scope: r.kind as string, ...(r.kind === "Role" ? { namespace: r.metadata.namespace as string } : {}) })));
    for (const b of bindings) {
      assert.deepEqual(b.subjects, [controllerSubject]);
      assert.equal(roles.find((r) => r.kind === b.roleRef.kind && r.metadata.name === b.roleRef.name)?.metadata.namespace, b.metadata.namespace);
    }

    env = await startEnv();
    await create(env.client, nodePath(), node("n1", { internalIp: "192.0.2.51" }));
    await create(env.client, nodePath(), node("n2", { internalIp: "192.0.2.52" }));
    proxy = await recordingProxy(env.server.url);
    // The controller talks to the proxy; everything else (the test, the fake kubelet) to the server directly.
    ctl = await startController({ ...env, server: Object.create(env.server, { url: { value: proxy.url } }) as Env["server"] }, { identity: "rbac" });
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
    // VIP mode: a pool (its status written), a Service given an address from it (annotation and status).
    await create(env.client, "/apis/berth.dev/v1alpha1/addresspools", { apiVersion: "berth.dev/v1alpha1", kind: "AddressPool", metadata: { name: "lan" }, spec: { addresses: ["198.51.100.0/30"] } });
    await create(env.client, "/api/v1/namespaces/default/services", service("vip", { annotations: { "berth.dev/mode": "vip" } }));
    await waitForIngress(env.client, "vip", ["198.51.100.0"]);
    await waitFor("pool status", async () => (await getObj(env.client, "/apis/berth.dev/v1alpha1/addresspools/lan"))?.status?.assignedIPv4 === 1);
    await create(env.client, "/api/v1/namespaces/default/services", service("bad", { annotations: { "berth.dev/priority-class": "Not A Name" } }));
    await create(env.client, "/api/v1/namespaces/default/services", service("gone", { ports: [{ port: 82 }] }));
    await waitForIngress(env.client, "gone", ["192.0.2.51", "192.0.2.52"]);
    await mergePatch(env.client, svcPath("web"), { spec: { type: "ClusterIP" } });
    await env.client.del(svcPath("gone"));
    await waitFor("gone deleted", async () => (await getObj(env.client, svcPath("gone"))) === undefined);
    await waitFor("web cleaned", async () => !(await getObj(env.client, svcPath("web")))?.metadata.finalizers);
    await waitFor("bad reported", async () => ((await getObj(env.client, svcPath("bad")))?.status?.conditions ?? []).length > 0);
    await ctl.stop();
    ctl = undefined;

    assert.ok(proxy.requests.length > 20, `only ${proxy.requests.length} requests recorded`);
    const used = new Set<Rule>();
    const missing = new Set<string>();
    for (const r of proxy.requests) {
      const a = attributes(r.method, r.url, r.status);
      for (const verb of a.verbs) {
        // A Role's rules apply to requests in its namespace only; the ClusterRole's (bound cluster-wide) to all.
        const rule = rules.find((x) => (x.namespace === undefined || x.namespace === a.namespace) && allows(x, a, verb));
        if (rule) used.add(rule);
        else missing.add(`${verb} ${a.apiGroup}/${a.resource}${a.name ? ` ${a.name}` : ""} in ${a.namespace ?? "(cluster)"}`);
      }
    }
    assert.deepEqual([...missing], [], "requests the RBAC does not allow");
    // Every rule is needed: each was used on this tour.
    const unused = rules.filter((r) => !used.has(r)).map((r) => `${r.scope} ${r.verbs.join(",")} ${r.resources.join(",")}`);
    assert.deepEqual(unused, [], "rules nothing used");
  });
});
