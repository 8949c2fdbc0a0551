// What `berth doctor` reads (a snapshot of the cluster as far as one Service is concerned) and what it concludes
// (findings with a fixed reason code, the plain-words why and the what-to-do). Kubernetes objects are
// @kubernetes/client-node's model types, imported for their shape only: nothing here loads client-node at runtime.
// Objects come as parsed JSON, so their timestamps are strings although the models type them as Dates.
import type { CoreV1Event, V1Deployment } from "@kubernetes/client-node";

import type { Lease } from "../lib/kube/leader.js";
import type { AddressPool } from "../lib/vip/address-pool.js";
import type { V1DaemonSet, V1EndpointSlice, V1Node, V1Pod, V1Service } from "../controller/types.js";

export type { CoreV1Event, V1Deployment };

/** Everything diagnose() looks at. `undefined` = could not be read (forbidden, unknown kind); null = not there. */
export interface DoctorSnapshot {
  /** The Service asked about. */
  namespace: string;
  name: string;
  /** Where the controller and the per-Service DaemonSets live (berth-system unless told otherwise). */
  controllerNamespace: string;
  /** When the snapshot was taken (ages of Leases and Events are judged against it). */
  now: Date;
  service: V1Service | null;
  /** DaemonSets in the controller namespace labelled for this Service (any uid). */
  daemonSets: V1DaemonSet[];
  /** lb-pods in the controller namespace labelled for this Service. */
  pods: V1Pod[];
  nodes: V1Node[] | undefined;
  /** EndpointSlices of the Service (kubernetes.io/service-name). */
  endpointSlices: V1EndpointSlice[] | undefined;
  /** core/v1 Events about the Service, its DaemonSets and its lb-pods. */
  events: CoreV1Event[];
  /**
   * Pods bound to the nodes where an lb-pod of this Service waits unscheduled: the candidates for holding its ports
   * (read only then, as the controller does).
   */
  podsOnBlockedNodes: V1Pod[];
  /** The controller's election Lease (berth-controller in the controller namespace). */
  lease: Lease | null | undefined;
  /** The controller's Deployment, when installed from deploy/berth.yaml. */
  deployment: V1Deployment | null | undefined;
  /** VIP mode's AddressPools; null when the cluster does not serve the resource (CRD not installed). */
  addressPools?: AddressPool[] | null | undefined;
  /** The speaker DaemonSet's pods in the controller namespace (where `berth manifests` puts them): which nodes announce. */
  speakerPods?: V1Pod[] | undefined;
}

/** Fixed tokens, one per thing that can be wrong (or right); tests, docs and `-o json` use them. */
export const REASONS = {
  serviceNotFound: "ServiceNotFound",
  notLoadBalancer: "NotLoadBalancer",
  otherClass: "OtherClass",
  unsetClassIgnored: "UnsetClassIgnored",
  serviceDeleting: "ServiceDeleting",
  invalidConfiguration: "InvalidConfiguration",
  vipNoAddressPools: "VIPNoAddressPools",
  vipPoolNotFound: "VIPPoolNotFound",
  vipNoPoolMatches: "VIPNoPoolMatches",
  vipPoolExhausted: "VIPPoolExhausted",
  vipAddressTaken: "VIPAddressTaken",
  vipAddressOutsidePools: "VIPAddressOutsidePools",
  vipSharingConflict: "VIPSharingConflict",
  vipFamilyMismatch: "VIPFamilyMismatch",
  vipAssignedOutsidePools: "VIPAssignedOutsidePools",
  vipPoolInvalid: "VIPPoolInvalid",
  vipNodeAddressInPool: "VIPNodeAddressInPool",
  vipNodeIpNotPinned: "VIPNodeIpNotPinned",
  controllerNotRunning: "ControllerNotRunning",
  noDaemonSet: "NoDaemonSet",
  noEligibleNodes: "NoEligibleNodes",
  portConflict: "PortConflict",
  sysctlForbidden: "SysctlForbidden",
  rulesTooLarge: "RulesTooLarge",
  imagePullError: "ImagePullError",
  crashLoopBackOff: "CrashLoopBackOff",
  readinessProbeFailing: "ReadinessProbeFailing",
  podsPending: "PodsPending",
  podsNotReady: "PodsNotReady",
  noReadyEndpointsOnServingNodes: "NoReadyEndpointsOnServingNodes",
  noEndpoints: "NoEndpoints",
  statusNotWritten: "StatusNotWritten",
  serving: "Serving",
} as const;

export type ReasonCode = (typeof REASONS)[keyof typeof REASONS];

/** error: the Service does not work because of it; warning: it works, but less than it should; info: a fact. */
export type Severity = "error" | "warning" | "info";

export interface Finding {
  code: ReasonCode;
  severity: Severity;
  /** One line: what is the matter. */
  summary: string;
  /** Why it happens, in plain words. */
  why: string;
  /** What to do about it (empty for info findings that need nothing). */
  fix: string;
  /** What the cluster says that shows it: conditions, Events, pod states (each one line). */
  evidence: string[];
}

export interface Diagnosis {
  /** `namespace/name` */
  service: string;
  healthy: boolean;
  /** One line: healthy (and where) or not working (and the main reason). */
  headline: string;
  /** status.loadBalancer.ingress as the Service has it now. */
  externalIps: string[];
  /** Errors first, then warnings, then info; within a severity, in the order the checks ran. */
  findings: Finding[];
}
