// `berth manifests`: the checked-in deploy/berth.yaml is its output, every object passes the Kubernetes schemas
// offline (kubernetes-models), the YAML reads back as the objects, the controller's flags are ones the controller
// accepts, and each flag changes what it should.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as yaml from "js-yaml";
import { CustomResourceDefinition } from "kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import { ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { controllerCommand, parseControllerOptions, type ControllerCommandConfig } from "../../../src/controller/command.js";
import { UsageError } from "../../../src/lib/errors.js";
import { berthVersion } from "../../../src/lib/version.js";
import { parseManifestOptions } from "../../../src/manifests/command.js";
import {
  buildManifests, controllerArgs, CONTROLLER, defaultManifestOptions, renderManifests, type Manifest, type ManifestOptions,
} from "../../../src/manifests/manifests.js";

const BERTH_YAML = new URL("../../../deploy/berth.yaml", import.meta.url);

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the kubernetes-models classes take their own typed data
const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  "v1/Namespace": Namespace,
  "v1/ServiceAccount": ServiceAccount,
  "v1/Service": Service,
  "rbac.authorization.k8s.io/v1/ClusterRole": ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ClusterRoleBinding,
  "rbac.authorization.k8s.io/v1/Role": Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": RoleBinding,
  "apps/v1/Deployment": Deployment,
  "apps/v1/DaemonSet": DaemonSet,
  "apiextensions.k8s.io/v1/CustomResourceDefinition": CustomResourceDefinition,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
};

const defaults = (): ManifestOptions => defaultManifestOptions("1.2.3");

/** The objects as a client sees them: plain JSON (the writer's comment markers are symbol keys and vanish). */
function plain(options: ManifestOptions): Manifest[] {
  return JSON.parse(JSON.stringify(buildManifests(options))) as Manifest[];
}

function byKind(docs: Manifest[], kind: string): Manifest {
  const doc = docs.find((d) => d.kind === kind);
  assert.ok(doc, `no ${kind}`);
  return doc;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifests are walked as untyped JSON
type Any = any;

function controllerPod(docs: Manifest[]): Any {
  return (byKind(docs, "Deployment") as Any).spec.template.spec;
}

/** Parses args with the real `berth controller` command line, as the container would run it. */
async function parseAsController(args: string[]): Promise<ControllerCommandConfig> {
  let config: ControllerCommandConfig | undefined;
  const command = controllerCommand().action((raw: Parameters<typeof parseControllerOptions>[0]) => {
    config = parseControllerOptions(raw);
  });
  assert.equal(args[0], "controller");
  await command.parseAsync(args.slice(1), { from: "user" });
  assert.ok(config);
  return config;
}

describe("berth manifests", () => {
  it("deploy/berth.yaml is exactly the generator's output with the defaults", () => {
    const expected = renderManifests(defaultManifestOptions(berthVersion()));
    assert.ok(readFileSync(BERTH_YAML, "utf8") === expected,
      "deploy/berth.yaml differs from `berth manifests`: regenerate it with `npm run build && bin/berth manifests > deploy/berth.yaml`");
  });

  it("writes YAML that reads back as exactly the generated objects", () => {
    for (const options of [defaults(), { ...defaults(), namespace: "lb", replicas: 1, image: "registry.local:5000/b/c@sha256:" + "a".repeat(64) }]) {
      assert.deepEqual(yaml.loadAll(renderManifests(options)), plain(options));
    }
  });

  it("every object validates against the Kubernetes schemas offline (kubernetes-models)", () => {
    const docs = plain(defaults());
    assert.deepEqual(docs.map((d) => d.kind), ["Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
      "RoleBinding", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet"]);
    for (const doc of docs) {
      const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
      assert.ok(Model, `no schema for ${doc.apiVersion} ${doc.kind}`);
      assert.doesNotThrow(() => new Model(doc).validate(), `${doc.kind} ${doc.metadata.name}`);
    }
  });

  it("the schemas catch a wrong type, so the validation is not vacuous", () => {
    const deployment = byKind(plain(defaults()), "Deployment") as Any;
    deployment.spec.replicas = "2";
    assert.throws(() => new Deployment(deployment).validate(), /replicas must be integer/);
  });

  it("the controller's memory limit and heap ceiling cover the peak bench/controller measured, with margin", () => {
    const bench = JSON.parse(readFileSync(new URL("../../../bench/results/controller.json", import.meta.url), "utf8")) as {
      results: { controllerPeakRssMiB: number }[];
    };
    // The converged steady state at 1,000 x 100, through a full relist, under the Deployment's own flags.
    const steady = JSON.parse(readFileSync(new URL("../../../bench/results/controller-steady.json", import.meta.url), "utf8")) as {
      results: { measured: { controllerPeakRssMiB: number; afterRelist: { peakRssMiB: number } }[] }[];
    };
    const peakRss = Math.max(...bench.results.map((r) => r.controllerPeakRssMiB),
      ...steady.results.flatMap((r) => r.measured.flatMap((m) => [m.controllerPeakRssMiB, m.afterRelist.peakRssMiB])));
    const c = controllerPod(plain(defaults())).containers[0] as Any;
    const limitMiB = Number(/^(\d+)Mi$/.exec(c.resources.limits.memory)?.[1] ?? NaN);
    const heapMiB = Number(/--max-old-space-size=(\d+)/.exec(c.env.find((e: Any) => e.name === "NODE_OPTIONS").value)?.[1] ?? NaN);
    assert.ok(limitMiB >= peakRss * 1.25, `limit ${c.resources.limits.memory} against a measured peak of ${peakRss} MiB`);
    // Room outside the V8 heap (code, buffers, new space) so V8 collects before the kernel kills.
    assert.ok(heapMiB <= limitMiB - 128, `heap ${heapMiB} MiB under a ${limitMiB} MiB limit`);
  });

  it("the controller pod meets Pod Security restricted and is spread over nodes", () => {
    const pod = controllerPod(plain(defaults()));
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.notEqual(pod.securityContext.runAsUser, 0);
    assert.equal(pod.securityContext.seccompProfile.type, "RuntimeDefault");
    assert.equal(pod.hostNetwork, undefined);
    for (const c of pod.containers) {
      assert.equal(c.securityContext.allowPrivilegeEscalation, false);
      assert.equal(c.securityContext.readOnlyRootFilesystem, true);
      assert.deepEqual(c.securityContext.capabilities, { drop: ["ALL"] });
      assert.equal(c.ports.some((p: Any) => p.hostPort !== undefined), false);
      assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
      assert.equal(c.livenessProbe.httpGet.path, "/healthz");
      assert.equal(c.readinessProbe.httpGet.path, "/readyz");
      assert.equal(c.livenessProbe.httpGet.port, "metrics");
      assert.equal(c.ports.find((p: Any) => p.name === "metrics").containerPort, 9090);
    }
    const term = pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm;
    assert.equal(term.topologyKey, "kubernetes.io/hostname");
    const deployment = byKind(plain(defaults()), "Deployment") as Any;
    assert.deepEqual(term.labelSelector.matchLabels, deployment.spec.selector.matchLabels);
    assert.deepEqual(deployment.spec.template.metadata.labels, deployment.spec.selector.matchLabels);
  });

  it("labels the namespace privileged for the lb-pods (hostPorts, NET_ADMIN, sysctls)", () => {
    const labels = byKind(plain(defaults()), "Namespace").metadata.labels ?? {};
    for (const mode of ["enforce", "audit", "warn"]) assert.equal(labels[`pod-security.kubernetes.io/${mode}`], "privileged");
    assert.match(renderManifests(defaults()), /# Pod Security Admission: .*"privileged" level\.\n\s*# .*hostPorts, add NET_ADMIN/);
  });

  it("the PodDisruptionBudget and metrics Service select the controller pods", () => {
    const docs = plain(defaults());
    const selector = (byKind(docs, "Deployment") as Any).spec.selector.matchLabels;
    const pdb = byKind(docs, "PodDisruptionBudget") as Any;
    assert.deepEqual(pdb.spec, { minAvailable: 1, selector: { matchLabels: selector } });
    const svc = byKind(docs, "Service") as Any;
    assert.deepEqual(svc.spec.selector, selector);
    assert.deepEqual(svc.spec.ports, [{ name: "metrics", port: 9090, targetPort: "metrics", protocol: "TCP" }]);
  });

  it("passes the controller flags the controller accepts, and that agree with the manifests", async () => {
    const o = defaults();
    const args = controllerArgs(o).map((a) => a.replace("$(POD_NAME)", "berth-controller-abc"));
    const config = await parseAsController(args);
    assert.equal(config.namespace, o.namespace);
    assert.equal(config.lbPodImage, "ghcr.io/berth-lb/berth-lb-pod:1.2.3");
    assert.equal(config.leaderElect, true);
    assert.equal(config.identity, "berth-controller-abc");
    assert.deepEqual(config.listen, { host: "0.0.0.0", port: 9090 });
    // The Role grants get/update on the Lease by name: it must be the one the controller uses.
    assert.equal(config.leaseName, CONTROLLER);
    assert.equal(config.leaseNamespace, o.namespace);
    // The Deployment's comment promises a takeover within the lease duration (15 s).
    assert.equal(config.leaseDurationMs, 15_000);
    assert.match(renderManifests(o), /take over within the\n\s*# lease duration \(15 s\)/);
    const role = byKind(plain(o), "Role") as Any;
    assert.deepEqual(role.rules.find((r: Any) => r.resourceNames).resourceNames, [config.leaseName]);
    // The Deployment defines the variable its args refer to.
    const env = controllerPod(plain(o)).containers[0].env as Any[];
    assert.deepEqual(env.find((e) => e.name === "POD_NAME").valueFrom, { fieldRef: { fieldPath: "metadata.name" } });
  });

  it("uses images tagged with berth's version, for both roles", () => {
    const o = defaultManifestOptions(berthVersion());
    assert.equal(o.image, `ghcr.io/berth-lb/berth-controller:${berthVersion()}`);
    assert.equal(o.lbImage, `ghcr.io/berth-lb/berth-lb-pod:${berthVersion()}`);
    assert.equal(controllerPod(plain(o)).containers[0].image, o.image);
  });

  it("--namespace moves every namespaced object, the bindings' subjects and the controller", () => {
    const docs = plain({ ...defaults(), namespace: "lb-system" });
    assert.equal(byKind(docs, "Namespace").metadata.name, "lb-system");
    for (const d of docs.filter((x) => !["Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"].includes(x.kind))) {
      assert.equal(d.metadata.namespace, "lb-system", d.kind);
    }
    for (const kind of ["ClusterRoleBinding", "RoleBinding"]) {
      assert.deepEqual((byKind(docs, kind) as Any).subjects, [{ kind: "ServiceAccount", name: CONTROLLER, namespace: "lb-system" }]);
    }
    assert.ok(controllerPod(docs).containers[0].args.includes("--namespace=lb-system"));
    assert.doesNotMatch(JSON.stringify(docs), /berth-system/);
  });

  it("--image changes only the controller's and the speaker's image (one image); --lb-image only the lb-pods' (the controller's flag)", () => {
    const base = plain(defaults());
    const image = plain({ ...defaults(), image: "example.com/c:9" });
    assert.equal(controllerPod(image).containers[0].image, "example.com/c:9");
    controllerPod(image).containers[0].image = controllerPod(base).containers[0].image;
    const speakerPod = (docs: Manifest[]): Any => (docs.find((d) => d.kind === "DaemonSet") as Any).spec.template.spec;
    assert.equal(speakerPod(image).containers[0].image, "example.com/c:9");
    speakerPod(image).containers[0].image = speakerPod(base).containers[0].image;
    assert.deepEqual(image, base);
    const lb = plain({ ...defaults(), lbImage: "example.com/lb:9" });
    assert.ok(controllerPod(lb).containers[0].args.includes("--lb-image=example.com/lb:9"));
    assert.equal(controllerPod(lb).containers[0].image, controllerPod(base).containers[0].image);
  });

  it("--replicas sets the replicas; one replica gets no PodDisruptionBudget (a drain could never meet it)", () => {
    assert.equal((byKind(plain({ ...defaults(), replicas: 3 }), "Deployment") as Any).spec.replicas, 3);
    const one = plain({ ...defaults(), replicas: 1 });
    assert.equal((byKind(one, "Deployment") as Any).spec.replicas, 1);
    assert.equal(one.some((d) => d.kind === "PodDisruptionBudget"), false);
  });

  it("parses good flags and refuses bad ones with one line naming the flag", () => {
    const d = defaultManifestOptions("1.2.3");
    assert.deepEqual(parseManifestOptions({ namespace: "lb", replicas: "3", image: "reg.io:5000/a/b:1", lbImage: "c@sha256:" + "0".repeat(64) }, d),
      { namespace: "lb", replicas: 3, image: "reg.io:5000/a/b:1", lbImage: "c@sha256:" + "0".repeat(64), version: "1.2.3" });
    assert.deepEqual(parseManifestOptions({ namespace: "berth-system", replicas: "2" }, d), d);
    const cases: [Parameters<typeof parseManifestOptions>[0], RegExp][] = [
      [{ namespace: "Berth", replicas: "2" }, /^--namespace must be a DNS label/],
      [{ namespace: "x".repeat(64), replicas: "2" }, /^--namespace: at most 63 characters$/],
      [{ namespace: "b", replicas: "0" }, /^--replicas must be an integer from 1 to 999$/],
      [{ namespace: "b", replicas: "two" }, /^--replicas must be/],
      [{ namespace: "b", replicas: "2", image: "ghcr.io/Berth/c:1" }, /^--image: "ghcr.io\/Berth\/c:1" is not an image reference/],
      [{ namespace: "b", replicas: "2", image: "" }, /^--image: "" is not an image reference/],
      [{ namespace: "b", replicas: "2", lbImage: "a b" }, /^--lb-image: "a b" is not an image reference/],
      [{ namespace: "b", replicas: "2", lbImage: "c:tag@sha256:short" }, /^--lb-image: /],
    ];
    for (const [raw, message] of cases) {
      assert.throws(() => parseManifestOptions(raw, d), (e: unknown) => e instanceof UsageError && message.test(e.message) && !e.message.includes("\n"),
        JSON.stringify(raw));
    }
  });
});
