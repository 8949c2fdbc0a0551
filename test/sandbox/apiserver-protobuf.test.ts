// Protobuf request bodies: the bytes below are what kubectl 1.32.4's create generators sent (captured with -v=10),
// so these tests prove the sandbox accepts exactly what `kubectl create namespace|configmap|serviceaccount|service|
// deployment` sends, with no JSON fallback on kubectl's side.
import assert from "node:assert/strict";
import { decodeKubeProtobuf } from "../../src/sandbox/apiserver/protobuf.js";
import { useServer } from "./apiserver-client.js";

const KUBECTL_BODIES = {
  namespace: "6b3873000a0f0a02763112094e616d657370616365121e0a160a066361702d6e7312001a0022002a0032003800420012001a020a001a002200",
  configmap: "6b3873000a0f0a0276311209436f6e6669674d617012280a160a066361702d636d12001a0022002a0032003800420012060a016112016212060a01631201641a002200",
  serviceaccount: "6b3873000a140a027631120e536572766963654163636f756e7412180a160a066361702d736112001a0022002a003200380042001a002200",
  loadbalancer:
    "6b3873000a0d0a0276311207536572766963651299010a250a066361702d6c6212001a0022002a003200380042005a0d0a0361707012066361702d6c62126c0a1b0a0738302d38303830120354435018502207080010903f1a0028000a220a093434332d6874747073120354435018bb03220b080110001a0568747470732800120d0a0361707012066361702d6c621a00220c4c6f616442616c616e6365723a00420052005a00600068001a020a001a002200",
  canI:
    "6b3873000a320a17617574686f72697a6174696f6e2e6b38732e696f2f7631121753656c665375626a656374416363657373526576696577123c0a100a0012001a0022002a00320038004200121e0a1c0a0764656661756c7412036765741a0022002a04706f647332003a001a08080012001a0020001a002200",
  // kubectl create deployment cap-dep --image=nginx --replicas=3 --port=80
  deployment:
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412c8010a270a076361702d64657012001a0022002a003200380042005a0e0a0361707012076361702d646570128e01080312100a0e0a0361707012076361702d6465701a700a200a0012001a0022002a003200380042005a0e0a0361707012076361702d646570124c122e0a056e67696e7812056e67696e782a00320a0a001000185022002a0042006a007200800100880100900100a201001a00320042004a0052005800600068008201008a01009a0100c2010022020a00280038001a0c0800100018002000280038001a002200",
  // kubectl create deployment cap-zero --image=nginx --replicas=0
  deploymentZero:
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412c0010a290a086361702d7a65726f12001a0022002a003200380042005a0f0a0361707012086361702d7a65726f128401080012110a0f0a0361707012086361702d7a65726f1a650a210a0012001a0022002a003200380042005a0f0a0361707012086361702d7a65726f124012220a056e67696e7812056e67696e782a0042006a007200800100880100900100a201001a00320042004a0052005800600068008201008a01009a0100c2010022020a00280038001a0c0800100018002000280038001a002200",
  headless:
    "6b3873000a0d0a027631120753657276696365126b0a310a0c6361702d686561646c65737312001a0022002a003200380042005a130a03617070120c6361702d686561646c657373123212130a03617070120c6361702d686561646c6573731a044e6f6e652209436c757374657249503a00420052005a00600068001a020a001a002200",
};

const bytes = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex, "hex"));
const PROTOBUF = { "Content-Type": "application/vnd.kubernetes.protobuf", Accept: "application/vnd.kubernetes.protobuf,application/json" };

describe("sandbox apiserver: protobuf bodies from kubectl's create generators", () => {
  const { client } = useServer();

  it("decodes kubectl create configmap's body to the object kubectl --dry-run=client -o json shows", () => {
    assert.deepEqual(decodeKubeProtobuf(bytes(KUBECTL_BODIES.configmap)),
      { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cap-cm" }, data: { a: "b", c: "d" } });
  });

  it("decodes kubectl create service loadbalancer's body, int and string targetPorts included", () => {
    assert.deepEqual(decodeKubeProtobuf(bytes(KUBECTL_BODIES.loadbalancer)), {
      apiVersion: "v1", kind: "Service",
      metadata: { name: "cap-lb", labels: { app: "cap-lb" } },
      spec: {
        ports: [{ name: "80-8080", protocol: "TCP", port: 80, targetPort: 8080 },
          { name: "443-https", protocol: "TCP", port: 443, targetPort: "https" }],
        selector: { app: "cap-lb" },
        type: "LoadBalancer",
      },
    });
  });

  it("decodes a headless service's clusterIP None", () => {
    const svc = decodeKubeProtobuf(bytes(KUBECTL_BODIES.headless));
    assert.deepEqual(svc.spec, { selector: { app: "cap-headless" }, clusterIP: "None", type: "ClusterIP" });
  });

  it("creates a namespace from kubectl's protobuf body (201)", async () => {
    const r = await client().req("POST", "/api/v1/namespaces", bytes(KUBECTL_BODIES.namespace), PROTOBUF);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.metadata.name, "cap-ns");
    assert.equal(r.body.status.phase, "Active");
  });

  it("creates a configmap and a serviceaccount from kubectl's protobuf bodies", async () => {
    const cm = await client().req("POST", "/api/v1/namespaces/default/configmaps", bytes(KUBECTL_BODIES.configmap), PROTOBUF);
    assert.equal(cm.status, 201, cm.text);
    assert.deepEqual(cm.body.data, { a: "b", c: "d" });
    const sa = await client().req("POST", "/api/v1/namespaces/default/serviceaccounts", bytes(KUBECTL_BODIES.serviceaccount), PROTOBUF);
    assert.equal(sa.status, 201, sa.text);
  });

  it("creates a LoadBalancer service from kubectl's protobuf body, with ClusterIP and NodePorts allocated", async () => {
    const r = await client().req("POST", "/api/v1/namespaces/default/services", bytes(KUBECTL_BODIES.loadbalancer), PROTOBUF);
    assert.equal(r.status, 201, r.text);
    assert.ok(r.body.spec.clusterIP);
    assert.ok(r.body.spec.ports.every((p: { nodePort?: number }) => typeof p.nodePort === "number"));
  });

  it("answers kubectl auth can-i's protobuf SelfSubjectAccessReview with allowed", async () => {
    const r = await client().req("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", bytes(KUBECTL_BODIES.canI), PROTOBUF);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.status.allowed, true);
  });

  it("decodes kubectl create deployment's body (its empty strategy and resources structs left out: the server's defaults fill them)", () => {
    assert.deepEqual(decodeKubeProtobuf(bytes(KUBECTL_BODIES.deployment)), {
      apiVersion: "apps/v1", kind: "Deployment",
      metadata: { name: "cap-dep", labels: { app: "cap-dep" } },
      spec: {
        replicas: 3,
        selector: { matchLabels: { app: "cap-dep" } },
        template: {
          metadata: { labels: { app: "cap-dep" } },
          spec: { containers: [{ name: "nginx", image: "nginx", ports: [{ containerPort: 80 }] }] },
        },
      },
    });
  });

  it("keeps replicas: 0 (a pointer field kubectl sets) where other zero values are left out", () => {
    const dep = decodeKubeProtobuf(bytes(KUBECTL_BODIES.deploymentZero));
    assert.equal((dep.spec as { replicas?: number }).replicas, 0);
  });

  it("creates a Deployment from kubectl's protobuf body, with kube's defaults filled in", async () => {
    const r = await client().req("POST", "/apis/apps/v1/namespaces/default/deployments", bytes(KUBECTL_BODIES.deployment), PROTOBUF);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.spec.strategy.rollingUpdate.maxSurge, "25%");
    assert.equal(r.body.spec.template.spec.containers[0].imagePullPolicy, "Always");
  });

  it("answers 415 to a protobuf body of a kind it cannot decode", async () => {
    const secret = Buffer.concat([Buffer.from("k8s\0", "latin1"), Buffer.from("0a0c0a027631120653656372657412050a030a0173", "hex")]);
    const r = await client().req("POST", "/api/v1/namespaces/default/secrets", Uint8Array.from(secret), PROTOBUF);
    assert.equal(r.status === 415 || r.status === 404, true, `status ${r.status}`);
    assert.throws(() => decodeKubeProtobuf(Uint8Array.from(secret)), (e: { code?: number }) => e.code === 415);
  });

  it("answers 415 to a field the decoder does not know rather than dropping it", () => {
    // A ConfigMap with an unknown field 9 holding a string.
    const raw = Buffer.from("0a050a03636d310a", "hex");
    const unknown = Buffer.concat([raw.subarray(0, 7), Buffer.from("4a0178", "hex")]);
    const env = Buffer.concat([Buffer.from("k8s\0", "latin1"), Buffer.from("0a0f0a0276311209436f6e6669674d6170", "hex"),
      Buffer.from([0x12, unknown.length]), unknown]);
    assert.throws(() => decodeKubeProtobuf(Uint8Array.from(env)), (e: { code?: number }) => e.code === 415);
  });

  it("answers 400 to a truncated protobuf body", async () => {
    const cut = bytes(KUBECTL_BODIES.configmap).subarray(0, 30);
    const r = await client().req("POST", "/api/v1/namespaces/default/configmaps", cut, PROTOBUF);
    assert.equal(r.status, 400);
  });
});
