// The controller's RBAC: the one place its access is written down. `berth manifests` prints these rules and
// test/integration/controller/rbac.test.ts proves, against the controller's own recorded requests, that every request
// of a full tour is allowed by them and that every rule is used (least privilege both ways).
//
// Scope rule: everything berth creates lives in one namespace (berth-system by default), so every write except those
// on the user's own Services and Events is granted by a namespaced Role there; the ClusterRole holds only what must
// span namespaces (reading Services, Nodes, EndpointSlices, Namespaces and AddressPools; writing a Service's
// finalizer, annotation and status and a pool's status; Events beside the Service).
import { commented } from "./yaml.js";

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  resourceNames?: string[];
  verbs: string[];
}

/** The ClusterRole's rules (cluster-wide: the user's Services and what decides where they are served). */
export function clusterRules(): PolicyRule[] {
  return [
    commented(
      "Services in every namespace: the informer lists and watches them (LoadBalancer ones are reconciled). No get:\n" +
      "every read comes from the informer's cache.",
      { apiGroups: [""], resources: ["services"], verbs: ["list", "watch"] },
    ),
    commented(
      "Adding and removing the berth.dev/cleanup finalizer is a write to the Service object itself (metadata.finalizers\n" +
      "is not part of any subresource), and kube-apiserver authorizes it as update or patch on \"services\". The\n" +
      "controller sends only merge patches of metadata.finalizers carrying the resourceVersion it read (so a concurrent\n" +
      "change is a 409, never a lost finalizer); it never changes spec. There is no narrower grant: RBAC cannot limit a\n" +
      "verb to one field. No update: the controller never PUTs a Service.",
      { apiGroups: [""], resources: ["services"], verbs: ["patch"] },
    ),
    commented(
      "status.loadBalancer.ingress and status.conditions, written through the status subresource only (merge patch).",
      { apiGroups: [""], resources: ["services/status"], verbs: ["patch"] },
    ),
    commented(
      "Which nodes may serve (labels, taints, readiness) and their addresses (the IPs written to status).",
      { apiGroups: [""], resources: ["nodes"], verbs: ["list", "watch"] },
    ),
    commented(
      "externalTrafficPolicy: Local needs to know which nodes have a ready endpoint; EndpointSlices live in the\n" +
      "Service's namespace, so reading them is cluster-wide.",
      { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] },
    ),
    commented(
      "Only list, and only when one of our lb-pods is stuck Pending: the pods bound to that node, in any namespace\n" +
      "(fieldSelector spec.nodeName), to name what holds the hostPort. No watch: the controller keeps no cluster-wide\n" +
      "pod cache (its pod informer is namespaced, see the Role).",
      { apiGroups: [""], resources: ["pods"], verbs: ["list"] },
    ),
    commented(
      "VIP mode's AddressPools (cluster-scoped): the informer lists and watches them; the controller validates them and\n" +
      "allocates Service addresses from them. Never written but for their status.",
      { apiGroups: ["berth.dev"], resources: ["addresspools"], verbs: ["list", "watch"] },
    ),
    commented(
      "Each pool's status: addresses assigned and available per family, and its Valid condition (merge patch).",
      { apiGroups: ["berth.dev"], resources: ["addresspools/status"], verbs: ["patch"] },
    ),
    commented(
      "Namespace labels, for pools that admit Services by namespaceSelectors.",
      { apiGroups: [""], resources: ["namespaces"], verbs: ["list", "watch"] },
    ),
    commented(
      "Events are written in the namespace of the Service they are about (core/v1 Events, as client-go's recorder).\n" +
      "patch: a repeated Event bumps count/lastTimestamp on the existing one instead of creating another, as\n" +
      "client-go's event aggregation does.",
      { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
    ),
  ];
}

/** The Role's rules, in berth's own namespace; `leaseName` is the controller's --lease-name. */
export function namespaceRules(leaseName: string): PolicyRule[] {
  return [
    commented(
      "The per-Service DaemonSets, only in this namespace. list/watch: the informer (and the orphan sweep at start);\n" +
      "patch: server-side apply (fieldManager berth-controller); create: kube-apiserver also authorizes an apply that\n" +
      "creates the object as a create; delete: a Service that is deleted, stops being a LoadBalancer or changes class,\n" +
      "and orphans. No update (apply never PUTs) and no get (reads come from the informer's cache).",
      { apiGroups: ["apps"], resources: ["daemonsets"], verbs: ["list", "watch", "create", "patch", "delete"] },
    ),
    commented(
      "Each DaemonSet's rules ConfigMap (the lb-pod's iptables/nftables texts, rendered by the controller), only in\n" +
      "this namespace. patch/create: server-side apply; delete: the previous template's ConfigMap once a Service's rules\n" +
      "change (the garbage collector removes the rest with their DaemonSet); list/watch: a label-selected informer,\n" +
      "trimmed to names, that notices one deleted so it is written again. No get: names carry the content's hash.",
      { apiGroups: [""], resources: ["configmaps"], verbs: ["list", "watch", "create", "patch", "delete"] },
    ),
    commented(
      "The lb-pods of those DaemonSets: which are Ready on which node (status), and which are stuck Pending on a\n" +
      "hostPort conflict. watch only here: the controller's pod informer is namespaced and label-selected.",
      { apiGroups: [""], resources: ["pods"], verbs: ["list", "watch"] },
    ),
    commented(
      "Leader election (client-go's protocol: get, create when missing, update with the resourceVersion read to renew,\n" +
      "take over or release). get/update are limited to the controller's own Lease by name.",
      { apiGroups: ["coordination.k8s.io"], resources: ["leases"], resourceNames: [leaseName], verbs: ["get", "update"] },
    ),
    commented(
      "create cannot be limited by name: for create the name is in the request body and RBAC's resourceNames never\n" +
      "match create requests. So it is granted for Leases in this namespace only; the controller creates only its own.",
      { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
    ),
  ];
}
