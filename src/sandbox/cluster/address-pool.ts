// What `sandbox up` installs for VIP mode: the AddressPool CRD (as deploy/berth.yaml does) and a default pool on the
// sandbox LAN, so a Service annotated `berth.dev/mode: vip` gets an address with no setup. The pool's addresses are
// ones no sandbox machine uses (layout.ts: nodes .11-.30, the client .100): 198.18.0.200-198.18.0.250, and with
// dual-stack fd42:b5e7:7a00::200-fd42:b5e7:7a00::250.
import { isAlreadyExists, type KubeClient, type Resource } from "../../lib/kube/client.js";
import { ADDRESS_POOL_RESOURCE } from "../../controller/vip/state.js";
import { ADDRESS_POOL, type AddressPool } from "../../lib/vip/address-pool.js";
import { addressPoolCrd } from "../../manifests/crd.js";
import type { SandboxLayout } from "./layout.js";

const CRDS: Resource = { group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions", kind: "CustomResourceDefinition", namespaced: false };

/** Name of the sandbox's default pool. */
export const SANDBOX_POOL = "sandbox-lan";

/** The default pool for a layout: a range of each LAN family that no node or client address falls in. */
export function sandboxAddressPool(layout: Pick<SandboxLayout, "dualStack">): AddressPool {
  const addresses = ["198.18.0.200-198.18.0.250", ...(layout.dualStack ? ["fd42:b5e7:7a00::200-fd42:b5e7:7a00::250"] : [])];
  return { apiVersion: `${ADDRESS_POOL.group}/${ADDRESS_POOL.version}`, kind: ADDRESS_POOL.kind, metadata: { name: SANDBOX_POOL }, spec: { addresses } };
}

export async function installAddressPool(client: KubeClient, layout: Pick<SandboxLayout, "dualStack">): Promise<void> {
  const ignoreExisting = (err: unknown): void => {
    if (!isAlreadyExists(err)) throw err;
  };
  // JSON round trip: the manifest's comment markers are symbol keys and must not reach the wire.
  await client.create(CRDS, JSON.parse(JSON.stringify(addressPoolCrd({ "app.kubernetes.io/name": "berth" }))) as never).catch(ignoreExisting);
  await client.create(ADDRESS_POOL_RESOURCE, sandboxAddressPool(layout) as never).catch(ignoreExisting);
}
