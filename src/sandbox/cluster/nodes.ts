// The Node objects of the sandbox's nodes, as a kubelet would register them: Ready, InternalIP = the node's LAN
// addresses (what berth publishes as EXTERNAL-IP when a node has no ExternalIP), spec.podCIDRs from the layout (as
// the node IPAM controller would set them), and the well-known labels DaemonSets and node selectors look at.
import { arch } from "node:os";
import type { NodeLayout } from "./layout.js";

/** The Node object of a sandbox node: Ready, InternalIPs = LAN addresses, podCIDRs, the well-known labels. */
export function nodeObject(node: NodeLayout, now: Date): { spec: Record<string, unknown>; metadata: Record<string, unknown>; status: Record<string, unknown> } {
  const time = now.toISOString().replace(/\.\d{3}Z$/, "Z");
  const goArch = arch() === "x64" ? "amd64" : arch();
  return {
    metadata: {
      name: node.name,
      labels: { "kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": goArch, "berth.dev/sandbox": "true" },
    },
    spec: { podCIDR: node.podCidrs[0], podCIDRs: node.podCidrs },
    status: {
      conditions: [{
        type: "Ready",
        status: "True",
        reason: "KubeletReady",
        message: "berth sandbox node (network namespace) is ready",
        lastHeartbeatTime: time,
        lastTransitionTime: time,
      }],
      addresses: [...node.lanIps.map((address) => ({ type: "InternalIP", address })), { type: "Hostname", address: node.name }],
      nodeInfo: {
        architecture: goArch,
        operatingSystem: "linux",
        kubeletVersion: "berth-sandbox",
        kubeProxyVersion: "berth-sandbox",
        containerRuntimeVersion: "berth-sandbox://processes",
        osImage: "berth sandbox",
        kernelVersion: "",
        bootID: "",
        machineID: "",
        systemUUID: "",
      },
    },
  };
}
