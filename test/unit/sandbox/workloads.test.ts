// The sandbox's Deployment and ReplicaSet controller decisions (src/sandbox/cluster/deployments.ts, replicasets.ts)
// and its web image catalogue (web-images.ts), on literal objects: what a sync creates, scales, deletes and writes as
// status, step by step through a rolling update as kube's deployment controller takes it.
import assert from "node:assert/strict";
import type { V1Deployment, V1Pod, V1ReplicaSet } from "@kubernetes/client-node";
import {
  DESIRED_REPLICAS_ANNOTATION,
  deploymentStatus,
  fenceposts,
  HASH_LABEL,
  newReplicaSetFor,
  planDeployment,
  podTemplateHash,
  REVISION_ANNOTATION,
  scaledValue,
  templatesEqual,
  type DeploymentAction,
} from "../../../src/sandbox/cluster/deployments.js";
import { deletionOrder, planReplicaSet, podFromTemplate } from "../../../src/sandbox/cluster/replicasets.js";
import { imageRepository, planWebContainer } from "../../../src/sandbox/cluster/web-images.js";

const NOW = "2026-12-07T18:00:00Z";

function deployment(o: { replicas?: number; image?: string; surge?: number | string; unavailable?: number | string; recreate?: boolean; generation?: number; annotations?: Record<string, string> } = {}): V1Deployment {
  return {
    metadata: { name: "web", namespace: "default", uid: "d-uid", generation: o.generation ?? 1, ...(o.annotations ? { annotations: o.annotations } : {}) },
    spec: {
      replicas: o.replicas ?? 3,
      selector: { matchLabels: { app: "web" } },
      strategy: o.recreate ? { type: "Recreate" } : { type: "RollingUpdate", rollingUpdate: { maxSurge: o.surge ?? "25%", maxUnavailable: o.unavailable ?? "25%" } },
      template: { metadata: { labels: { app: "web" } }, spec: { containers: [{ name: "nginx", image: o.image ?? "nginx" }] } },
    },
  };
}

/** A ReplicaSet of `d` at `replicas`, its status saying `available` of them are available. */
function rsOf(d: V1Deployment, o: { replicas: number; available?: number; revision: number; created: string; uid?: string }): V1ReplicaSet {
  const rs = newReplicaSetFor(d, o.revision, o.replicas);
  rs.metadata = { ...rs.metadata, uid: o.uid ?? `rs-${o.revision}`, creationTimestamp: o.created as unknown as Date, resourceVersion: "1" };
  const available = o.available ?? o.replicas;
  rs.status = { replicas: o.replicas, readyReplicas: available, availableReplicas: available };
  return rs;
}

const scales = (actions: DeploymentAction[]): string[] =>
  actions.flatMap((a) => (a.kind === "scaleReplicaSet" ? [`${a.rs.metadata?.uid}->${a.replicas}`] : []));

describe("sandbox Deployment controller stand-in: decisions", () => {
  it("resolves maxSurge (rounded up) and maxUnavailable (rounded down) as ResolveFenceposts does", () => {
    const cases: [number | string, number | string, number, [number, number]][] = [
      ["25%", "25%", 3, [1, 0]],
      ["25%", "25%", 4, [1, 1]],
      ["25%", "25%", 10, [3, 2]],
      [0, 0, 3, [0, 1]],
      [1, "50%", 5, [1, 2]],
    ];
    for (const [surge, unavailable, replicas, expected] of cases) {
      assert.deepEqual(fenceposts(deployment({ surge, unavailable, replicas })), expected, `${surge}/${unavailable} of ${replicas}`);
    }
    assert.equal(scaledValue("33%", 10, true), 4);
    assert.equal(scaledValue("33%", 10, false), 3);
  });

  it("hashes templates like kube's names look (SafeEncodeString alphabet), ignoring the pod-template-hash label", () => {
    const a = deployment().spec?.template;
    const hash = podTemplateHash(a);
    assert.match(hash, /^[bcdfghjklmnpqrstvwxz2456789]{1,10}$/);
    assert.equal(podTemplateHash({ ...a, metadata: { labels: { app: "web", [HASH_LABEL]: "x" } } }), hash);
    assert.notEqual(podTemplateHash(deployment({ image: "nginx:1.27" }).spec?.template), hash);
    assert.ok(templatesEqual(a, { ...a, metadata: { labels: { [HASH_LABEL]: "zz", app: "web" } } }));
  });

  it("creates the first ReplicaSet at full size with revision 1, owned by the Deployment, hash in selector and labels", () => {
    const d = deployment();
    const actions = planDeployment(d, [], NOW);
    const create = actions.find((a) => a.kind === "createReplicaSet");
    assert.ok(create && create.kind === "createReplicaSet");
    const rs = create.rs;
    const hash = podTemplateHash(d.spec?.template);
    assert.equal(rs.metadata?.name, `web-${hash}`);
    assert.equal(rs.spec?.replicas, 3);
    assert.equal(rs.metadata?.annotations?.[REVISION_ANNOTATION], "1");
    assert.equal(rs.metadata?.annotations?.[DESIRED_REPLICAS_ANNOTATION], "3");
    assert.deepEqual(rs.spec?.selector?.matchLabels, { app: "web", [HASH_LABEL]: hash });
    assert.deepEqual(rs.spec?.template?.metadata?.labels, { app: "web", [HASH_LABEL]: hash });
    assert.deepEqual(rs.metadata?.ownerReferences, [{ apiVersion: "apps/v1", kind: "Deployment", name: "web", uid: "d-uid", controller: true, blockOwnerDeletion: true }]);
    assert.ok(actions.some((a) => a.kind === "annotateDeployment" && a.annotations[REVISION_ANNOTATION] === "1"));
    const status = actions.find((a) => a.kind === "status");
    assert.ok(status && status.kind === "status");
    assert.deepEqual(status.status.conditions?.map((c) => [c.type, c.status, c.reason, c.message]), [
      ["Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."],
      ["Progressing", "True", "NewReplicaSetCreated", `Created new replica set "web-${hash}"`],
    ]);
  });

  it("walks a rolling update of 4 replicas (maxSurge 1, maxUnavailable 1) step by step as rolling.go does", () => {
    const oldD = deployment({ replicas: 4, surge: 1, unavailable: 1 });
    const d = deployment({ replicas: 4, surge: 1, unavailable: 1, image: "nginx:1.27", annotations: { [REVISION_ANNOTATION]: "1" } });
    const old = rsOf(oldD, { replicas: 4, revision: 1, created: "2026-12-07T17:00:00Z", uid: "old" });
    // 1. No new ReplicaSet yet: created with 1 (4 + surge 1 = 5 pods at most), revision 2.
    const first = planDeployment(d, [old], NOW);
    const created = first.find((a) => a.kind === "createReplicaSet");
    assert.ok(created && created.kind === "createReplicaSet");
    assert.equal(created.rs.spec?.replicas, 1);
    assert.equal(created.rs.metadata?.annotations?.[REVISION_ANNOTATION], "2");
    // 2. New at 1, not available yet: the new one cannot grow (5 pods), old may drop to 3 (4 - 1 unavailable).
    const fresh = (replicas: number, available: number) => rsOf(d, { replicas, available, revision: 2, created: "2026-12-07T17:59:00Z", uid: "new" });
    assert.deepEqual(scales(planDeployment(d, [old, fresh(1, 0)], NOW)), ["old->3"]);
    // 3. Old at 3 (available 3), new 1 unavailable: total 4, the new one grows to 2.
    const old3 = { ...old, spec: { ...old.spec, replicas: 3 }, status: { replicas: 3, availableReplicas: 3, readyReplicas: 3 } } as V1ReplicaSet;
    assert.deepEqual(scales(planDeployment(d, [old3, fresh(1, 0)], NOW)), ["new->2"]);
    // 4. New at 2 with 2 available: old goes to 1 (available 5 - min 3 = 2 may go).
    assert.deepEqual(scales(planDeployment(d, [old3, fresh(2, 2)], NOW)), ["old->1"]);
    // 5. Done: new at 4 available, old at 0: nothing moves, and the status says the rollout completed.
    const old0 = { ...old, spec: { ...old.spec, replicas: 0 }, status: { replicas: 0 } } as V1ReplicaSet;
    const done = planDeployment({ ...d, metadata: { ...d.metadata, annotations: { [REVISION_ANNOTATION]: "2" } } }, [old0, fresh(4, 4)], NOW);
    assert.deepEqual(scales(done), []);
    const status = done.find((a) => a.kind === "status");
    assert.ok(status && status.kind === "status");
    assert.deepEqual([status.status.replicas, status.status.updatedReplicas, status.status.availableReplicas, status.status.unavailableReplicas], [4, 4, 4, 0]);
    assert.deepEqual(status.status.conditions?.map((c) => [c.type, c.status, c.reason]), [
      ["Available", "True", "MinimumReplicasAvailable"], ["Progressing", "True", "NewReplicaSetAvailable"],
    ]);
  });

  it("scales the one active ReplicaSet straight to spec.replicas (kubectl scale), to zero included", () => {
    const d3 = deployment({ replicas: 3, annotations: { [REVISION_ANNOTATION]: "1" } });
    const rs = rsOf(d3, { replicas: 3, revision: 1, created: "2026-12-07T17:00:00Z" });
    assert.deepEqual(scales(planDeployment(deployment({ replicas: 0, annotations: { [REVISION_ANNOTATION]: "1" } }), [rs], NOW)), ["rs-1->0"]);
    assert.deepEqual(scales(planDeployment(deployment({ replicas: 10, annotations: { [REVISION_ANNOTATION]: "1" } }), [rs], NOW)), ["rs-1->10"]);
  });

  it("makes an old ReplicaSet new again on rollout undo, with the next revision", () => {
    const v1 = deployment();
    const v2 = deployment({ image: "nginx:1.27" });
    const rs1 = rsOf(v1, { replicas: 0, revision: 1, created: "2026-12-07T17:00:00Z", uid: "rs1" });
    rs1.status = { replicas: 0 };
    const rs2 = rsOf(v2, { replicas: 3, revision: 2, created: "2026-12-07T17:10:00Z", uid: "rs2" });
    const undone = { ...v1, metadata: { ...v1.metadata, annotations: { [REVISION_ANNOTATION]: "2" } } };
    const actions = planDeployment(undone, [rs1, rs2], NOW);
    assert.ok(actions.some((a) => a.kind === "annotateReplicaSet" && a.rs === rs1 && a.annotations[REVISION_ANNOTATION] === "3"));
    assert.ok(actions.some((a) => a.kind === "annotateDeployment" && a.annotations[REVISION_ANNOTATION] === "3"));
    assert.deepEqual(scales(actions), ["rs1->1"], "the rolling update begins: 3 + surge 1");
  });

  it("scales old ReplicaSets to zero first, then the new one up, with the Recreate strategy", () => {
    const v1 = deployment({ recreate: true });
    const v2 = deployment({ recreate: true, image: "nginx:1.27" });
    const rs1 = rsOf(v1, { replicas: 3, revision: 1, created: "2026-12-07T17:00:00Z", uid: "rs1" });
    const first = planDeployment(v2, [rs1], NOW);
    const created = first.find((a) => a.kind === "createReplicaSet");
    assert.ok(created && created.kind === "createReplicaSet");
    assert.equal(created.rs.spec?.replicas, 0);
    const rs2 = rsOf(v2, { replicas: 0, revision: 2, created: "2026-12-07T17:10:00Z", uid: "rs2" });
    assert.deepEqual(scales(planDeployment(v2, [rs1, rs2], NOW)), ["rs1->0"]);
    const gone = { ...rs1, spec: { ...rs1.spec, replicas: 0 }, status: { replicas: 1 } } as V1ReplicaSet;
    assert.deepEqual(scales(planDeployment(v2, [gone, rs2], NOW)), [], "waits while an old pod still runs");
    gone.status = { replicas: 0 };
    assert.deepEqual(scales(planDeployment(v2, [gone, rs2], NOW)), ["rs2->3"]);
  });

  it("deletes idle old ReplicaSets beyond revisionHistoryLimit, oldest revision first", () => {
    const d = deployment({ image: "v4", annotations: { [REVISION_ANNOTATION]: "4" } });
    d.spec = { ...d.spec, revisionHistoryLimit: 1 } as V1Deployment["spec"];
    const idle = [1, 2, 3].map((n) => {
      const rs = rsOf(deployment({ image: `v${n}` }), { replicas: 0, revision: n, created: `2026-12-07T17:0${n}:00Z`, uid: `rs${n}` });
      rs.status = { replicas: 0 };
      return rs;
    });
    const current = rsOf(d, { replicas: 3, revision: 4, created: "2026-12-07T17:09:00Z", uid: "rs4" });
    const deleted = planDeployment(d, [...idle, current], NOW).flatMap((a) => (a.kind === "deleteReplicaSet" ? [a.rs.metadata?.uid] : []));
    assert.deepEqual(deleted, ["rs1", "rs2"]);
  });

  it("leaves alone ReplicaSets another Deployment controls", () => {
    const other = rsOf(deployment(), { replicas: 3, revision: 1, created: "2026-12-07T17:00:00Z" });
    other.metadata = { ...other.metadata, ownerReferences: [{ apiVersion: "apps/v1", kind: "Deployment", name: "x", uid: "other", controller: true }] };
    assert.ok(planDeployment(deployment(), [other], NOW).some((a) => a.kind === "createReplicaSet"));
  });

  it("marks a rollout without progress for progressDeadlineSeconds ProgressDeadlineExceeded, and one with progress not", () => {
    const d = deployment({ annotations: { [REVISION_ANNOTATION]: "1" } });
    d.spec = { ...d.spec, progressDeadlineSeconds: 600 } as V1Deployment["spec"];
    const rs = rsOf(d, { replicas: 3, available: 1, revision: 1, created: "2026-12-07T17:00:00Z" });
    const stale = "2026-12-07T17:49:00Z"; // 11 minutes before NOW
    d.status = {
      replicas: 3, updatedReplicas: 3, readyReplicas: 1, availableReplicas: 1,
      conditions: [{ type: "Progressing", status: "True", reason: "ReplicaSetUpdated", message: `ReplicaSet "${rs.metadata?.name}" is progressing.`,
        lastUpdateTime: stale as unknown as Date, lastTransitionTime: stale as unknown as Date }],
    };
    const progressing = (s: ReturnType<typeof deploymentStatus>) => s.conditions?.find((c) => c.type === "Progressing");
    const stuck = progressing(deploymentStatus(d, [rs], rs, NOW));
    assert.deepEqual([stuck?.status, stuck?.reason, stuck?.message], ["False", "ProgressDeadlineExceeded", `ReplicaSet "${rs.metadata?.name}" has timed out progressing.`]);
    const moving = { ...rs, status: { ...rs.status, readyReplicas: 2, availableReplicas: 2 } } as V1ReplicaSet;
    const fine = progressing(deploymentStatus(d, [moving], moving, NOW));
    assert.deepEqual([fine?.status, fine?.reason, fine?.lastUpdateTime], ["True", "ReplicaSetUpdated", NOW]);
  });

  it("keeps a condition's transition time while its status holds, as the status kubectl describe shows", () => {
    const d = deployment();
    const rs = rsOf(d, { replicas: 3, revision: 1, created: "2026-12-07T17:00:00Z" });
    const first = deploymentStatus(d, [rs], rs, "2026-12-07T17:00:05Z");
    const later = deploymentStatus({ ...d, status: first }, [rs], rs, "2026-12-07T17:30:00Z");
    assert.deepEqual(later.conditions, first.conditions);
  });
});

function pod(name: string, o: { owner?: string; node?: string; phase?: string; ready?: boolean; created?: string; deleting?: boolean; restarts?: number } = {}): V1Pod {
  return {
    metadata: {
      name, namespace: "default", uid: `p-${name}`, creationTimestamp: (o.created ?? "2026-12-07T17:00:00Z") as unknown as Date,
      ...(o.deleting ? { deletionTimestamp: "2026-12-07T17:59:00Z" as unknown as Date } : {}),
      ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "rs", uid: o.owner ?? "rs-uid", controller: true }],
    },
    spec: { containers: [], ...(o.node ? { nodeName: o.node } : {}) },
    status: {
      phase: o.phase ?? "Running",
      conditions: [{ type: "Ready", status: o.ready === false ? "False" : "True", lastTransitionTime: "2026-12-07T17:00:01Z" as unknown as Date }],
      containerStatuses: [{ name: "c", image: "i", imageID: "", ready: o.ready !== false, restartCount: o.restarts ?? 0 }],
    },
  };
}

function replicaSet(replicas: number, status: V1ReplicaSet["status"] = { replicas: 0 }): V1ReplicaSet {
  return {
    metadata: { name: "rs", namespace: "default", uid: "rs-uid", generation: 2 },
    spec: { replicas, selector: { matchLabels: { app: "web" } }, template: { metadata: { labels: { app: "web" } }, spec: { containers: [{ name: "c", image: "nginx" }] } } },
    status,
  };
}

describe("sandbox ReplicaSet controller stand-in: decisions", () => {
  const t = Date.parse(NOW);

  it("creates the missing pods, counting only its own active ones (not Failed, not Terminating, not another's)", () => {
    const pods = [pod("a", { node: "n1" }), pod("b", { phase: "Failed" }), pod("c", { deleting: true }), pod("d", { owner: "other" })];
    const plan = planReplicaSet(replicaSet(3), pods, t);
    assert.equal(plan.create, 2);
    assert.deepEqual(plan.delete, []);
    assert.deepEqual(plan.status, { replicas: 1, fullyLabeledReplicas: 0, readyReplicas: 1, availableReplicas: 1, observedGeneration: 2 });
  });

  it("deletes the surplus in ActivePods order: unbound, then Pending, then not ready, then the newest", () => {
    const pods = [
      pod("ready-old", { node: "n1", created: "2026-12-07T17:00:00Z" }),
      pod("ready-new", { node: "n1", created: "2026-12-07T17:30:00Z" }),
      pod("unready", { node: "n2", ready: false }),
      pod("pending", { node: "n3", phase: "Pending", ready: false }),
      pod("unbound", { phase: "Pending", ready: false }),
    ];
    const plan = planReplicaSet(replicaSet(1), pods, t);
    assert.deepEqual(plan.delete.map((p) => p.metadata?.name), ["unbound", "pending", "unready", "ready-new"]);
    assert.ok(deletionOrder(pods[1] as V1Pod, pods[0] as V1Pod) < 0);
  });

  it("writes no status when nothing changed", () => {
    const status = { replicas: 1, fullyLabeledReplicas: 0, readyReplicas: 1, availableReplicas: 1, observedGeneration: 2 };
    assert.equal(planReplicaSet(replicaSet(1, status), [pod("a", { node: "n1" })], t).status, undefined);
  });

  it("makes pods from the template: unbound, named by the server, controlled by the ReplicaSet", () => {
    const p = podFromTemplate(replicaSet(1));
    assert.equal(p.metadata?.generateName, "rs-");
    assert.equal(p.spec?.nodeName, undefined);
    assert.deepEqual(p.metadata?.labels, { app: "web" });
    assert.deepEqual(p.metadata?.ownerReferences, [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "rs", uid: "rs-uid", controller: true, blockOwnerDeletion: true }]);
  });
});

describe("sandbox web image catalogue", () => {
  it("normalises image references to their repository", () => {
    const cases: [string, string][] = [
      ["nginx", "nginx"], ["nginx:1.27", "nginx"], ["docker.io/library/nginx:latest", "nginx"],
      ["nginx@sha256:abcd", "nginx"], ["Traefik/Whoami:v1.10", "traefik/whoami"],
      ["k8s.gcr.io/e2e-test-images/agnhost:2.39", "registry.k8s.io/e2e-test-images/agnhost"],
      ["localhost:5000/app", "localhost:5000/app"],
    ];
    for (const [image, repo] of cases) assert.equal(imageRepository(image), repo, image);
  });

  it("serves a known image on its usual port plus the declared ones, an unknown one on its declared ports", () => {
    const cases: [string, Parameters<typeof planWebContainer>[1], number[], boolean][] = [
      ["nginx", {}, [80], true],
      ["nginx:1.27", { ports: [{ containerPort: 8443 }, { containerPort: 53, protocol: "UDP" }] }, [80, 8443], true],
      ["hashicorp/http-echo", { args: ["-text=hi", "-listen=:5679"] }, [5679], true],
      ["hashicorp/http-echo", {}, [5678], true],
      ["registry.k8s.io/e2e-test-images/agnhost:2.39", { args: ["netexec", "--http-port", "9000"] }, [9000], true],
      ["traefik/whoami", { args: ["--port=8081"] }, [8081], true],
      ["registry.example/team/shop:2", { ports: [{ containerPort: 8080 }] }, [8080], false],
      ["registry.example/team/shop:2", {}, [80, 8080], false],
    ];
    for (const [image, container, ports, known] of cases) {
      const plan = planWebContainer(image, container);
      assert.deepEqual([plan.ports, plan.known], [ports, known], image);
    }
    assert.match(planWebContainer("registry.example/x", { ports: [{ containerPort: 8080 }] }).message,
      /^The sandbox has no image "registry\.example\/x" .* answering HTTP on port 8080$/);
  });
});
