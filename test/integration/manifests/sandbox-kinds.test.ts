// The kinds the sandbox API server serves for the install manifests (RBAC, Deployments, PodDisruptionBudgets), over
// HTTP: kube-apiserver's defaults, generation tracking, typed decoding and the validation errors that would stop a
// broken install on a real cluster. Only stored: nothing enforces RBAC or runs the Deployments.
import assert from "node:assert/strict";
import { useServer } from "../../sandbox/apiserver-client.js";

const RBAC = "/apis/rbac.authorization.k8s.io/v1";
const DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments";
const PDBS = "/apis/policy/v1/namespaces/default/poddisruptionbudgets";

function deployment(name: string, spec: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: "apps/v1", kind: "Deployment", metadata: { name },
    spec: {
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: "c", image: "x:1" }] } },
      ...spec,
    },
  };
}

/** The field paths of a 422's causes. */
function fields(body: { details?: { causes?: { field: string }[] } }): string[] {
  return (body.details?.causes ?? []).map((c) => c.field);
}

describe("sandbox API server: RBAC, Deployments and PodDisruptionBudgets", () => {
  const { client } = useServer();

  it("fills a Deployment's defaults on create and tracks its generation", async () => {
    const created = await client().post(DEPLOYMENTS, deployment("web"));
    assert.equal(created.status, 201, created.text);
    const spec = created.body.spec;
    assert.equal(spec.replicas, 1);
    assert.deepEqual(spec.strategy, { type: "RollingUpdate", rollingUpdate: { maxUnavailable: "25%", maxSurge: "25%" } });
    assert.equal(spec.revisionHistoryLimit, 10);
    assert.equal(spec.progressDeadlineSeconds, 600);
    assert.equal(spec.template.spec.restartPolicy, "Always");
    assert.equal(spec.template.spec.containers[0].imagePullPolicy, "IfNotPresent");
    assert.equal(created.body.metadata.generation, 1);
    const scaled = await client().patch(`${DEPLOYMENTS}/web`, "application/merge-patch+json", { spec: { replicas: 3 } });
    assert.equal(scaled.status, 200, scaled.text);
    assert.equal(scaled.body.metadata.generation, 2);
    const labelled = await client().patch(`${DEPLOYMENTS}/web`, "application/merge-patch+json", { metadata: { labels: { a: "b" } } });
    assert.equal(labelled.body.metadata.generation, 2);
  });

  it("refuses a Deployment whose selector is empty or does not match its template, and a mistyped field", async () => {
    const empty = await client().post(DEPLOYMENTS, deployment("a", { selector: {} }));
    assert.equal(empty.status, 422);
    assert.match(empty.body.message, /spec\.selector: Invalid value: .*: empty selector is invalid for deployment/);
    const mismatch = await client().post(DEPLOYMENTS, deployment("b", { selector: { matchLabels: { app: "other" } } }));
    assert.equal(mismatch.status, 422);
    assert.deepEqual(fields(mismatch.body), ["spec.template.metadata.labels"]);
    const typed = await client().post(DEPLOYMENTS, deployment("c", { replicas: "2" }));
    assert.equal(typed.status, 400);
    assert.match(typed.body.message, /cannot unmarshal string into Go struct field DeploymentSpec\.spec\.replicas of type int32/);
  });

  it("starts a PodDisruptionBudget's status at zero and refuses minAvailable with maxUnavailable", async () => {
    const pdb = { apiVersion: "policy/v1", kind: "PodDisruptionBudget", metadata: { name: "p" }, spec: { minAvailable: 1, selector: { matchLabels: { a: "b" } } } };
    const created = await client().post(PDBS, pdb);
    assert.equal(created.status, 201, created.text);
    assert.deepEqual(created.body.status, { disruptionsAllowed: 0, currentHealthy: 0, desiredHealthy: 0, expectedPods: 0 });
    const both = await client().post(PDBS, { ...pdb, metadata: { name: "q" }, spec: { ...pdb.spec, maxUnavailable: 1 } });
    assert.equal(both.status, 422);
    assert.match(both.body.message, /minAvailable and maxUnavailable cannot be both set/);
  });

  it("serves ClusterRoles cluster-wide and Roles per namespace, and refuses a rule without verbs or API groups", async () => {
    const rule = { apiGroups: [""], resources: ["services"], verbs: ["list"] };
    const cr = await client().post(`${RBAC}/clusterroles`, { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name: "r" }, rules: [rule] });
    assert.equal(cr.status, 201, cr.text);
    assert.equal(cr.body.metadata.namespace, undefined);
    assert.equal((await client().get(`${RBAC}/namespaces/default/clusterroles/r`)).status, 404);
    const role = await client().post(`${RBAC}/namespaces/default/roles`, { apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata: { name: "r" }, rules: [rule] });
    assert.equal(role.status, 201, role.text);
    const bad = await client().post(`${RBAC}/namespaces/default/roles`, {
      apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata: { name: "bad" },
      rules: [{ apiGroups: [""], resources: ["pods"], verbs: [] }, { resources: ["pods"], verbs: ["get"] }],
    });
    assert.equal(bad.status, 422);
    assert.deepEqual(fields(bad.body), ["rules[0].verbs", "rules[1].apiGroups"]);
    const unknown = await client().post(`${RBAC}/namespaces/default/roles`, {
      apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata: { name: "typo" }, rules: [{ ...rule, verb: ["get"] }],
    });
    // Dropped with a Warning header (fieldValidation's server default, Warn); kubectl's Strict makes it a 400.
    assert.equal(unknown.status, 201);
    assert.equal(unknown.headers.get("warning"), '299 - "unknown field \\"rules[0].verb\\""');
  });

  it("checks a binding's roleRef and subjects, and never lets its roleRef change", async () => {
    const base = { apiVersion: "rbac.authorization.k8s.io/v1", metadata: { name: "b" }, roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "r" } };
    const crb = await client().post(`${RBAC}/clusterrolebindings`, { ...base, kind: "ClusterRoleBinding", roleRef: { ...base.roleRef, kind: "Role" },
      subjects: [{ kind: "ServiceAccount", name: "sa" }] });
    assert.equal(crb.status, 422);
    assert.deepEqual(fields(crb.body), ["roleRef.kind", "subjects[0].namespace"]);
    // In a RoleBinding a ServiceAccount without a namespace is the binding's own.
    const rb = await client().post(`${RBAC}/namespaces/default/rolebindings`, { ...base, kind: "RoleBinding", subjects: [{ kind: "ServiceAccount", name: "sa" }] });
    assert.equal(rb.status, 201, rb.text);
    const changed = await client().patch(`${RBAC}/namespaces/default/rolebindings/b`, "application/merge-patch+json", { roleRef: { name: "other" } });
    assert.equal(changed.status, 422);
    assert.match(changed.body.message, /roleRef: Invalid value: .*: cannot change roleRef/);
  });
});
