// Host-network pods (spec.hostNetwork: true) in the sandbox kubelet, as a kubelet runs them: in the node's own network
// namespace, with the node's addresses as the pod's IPs (status.podIPs = status.hostIPs, as the kubelet's
// pkg/kubelet/kubelet_pods.go generateAPIPodStatus sets for host-network pods), and nothing of the node's network to
// create on start or remove on stop. VIP mode's speaker DaemonSet runs this way (docs/design/0015).
import type { V1Pod } from "@kubernetes/client-node";

/** Where a host-network pod runs, or why it cannot. */
export type HostNetworkAttachment = { ns: string; ips: string[] } | { problem: string };

/**
 * The namespace and IPs of a host-network pod on a node. A kubelet refuses namespaced sysctls in a host-network pod
 * (pkg/kubelet/sysctl/safe_sysctls.go's validation: "not allowed with host net enabled"): applying them would change the
 * node itself, so this refuses too.
 */
export function hostNetworkAttachment(pod: V1Pod, nodeNs: string | undefined, hostIPs: readonly string[]): HostNetworkAttachment {
  const sysctls = pod.spec?.securityContext?.sysctls ?? [];
  if (sysctls.length > 0) {
    return { problem: `sysctl ${sysctls[0]!.name} is not allowed with host network enabled` };
  }
  if (nodeNs === undefined) return { problem: `the sandbox kubelet does not know the network namespace of node ${pod.spec?.nodeName ?? "(none)"}` };
  return { ns: nodeNs, ips: [...hostIPs] };
}

export function isHostNetwork(pod: V1Pod): boolean {
  return pod.spec?.hostNetwork === true;
}
