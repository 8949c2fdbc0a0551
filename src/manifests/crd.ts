// The AddressPool CustomResourceDefinition (VIP mode's pools; the shape is src/lib/vip/address-pool.ts). The
// structural schema lets kube-apiserver reject what is wrong in type or shape before the controller sees it (a list
// where a string belongs, an unknown field, which it prunes); what needs parsing (CIDRs, ranges, overlaps between
// pools) is the controller's, which marks such a pool Invalid with the reason (src/controller/vip/pools.ts).
import { ADDRESS_POOL } from "../lib/vip/address-pool.js";
import type { Manifest } from "./manifests.js";
import { commented } from "./yaml.js";

const labelSelector = {
  type: "object",
  description: "A label selector (matchLabels, matchExpressions), as in a Deployment's selector.",
  properties: {
    matchLabels: { type: "object", additionalProperties: { type: "string" } },
    matchExpressions: {
      type: "array",
      items: {
        type: "object",
        required: ["key", "operator"],
        properties: {
          key: { type: "string" },
          operator: { type: "string", enum: ["In", "NotIn", "Exists", "DoesNotExist"] },
          values: { type: "array", items: { type: "string" } },
        },
      },
    },
  },
  "x-kubernetes-map-type": "atomic",
};

const selectors = (description: string): Record<string, unknown> => ({ type: "array", description, items: labelSelector });

const condition = {
  type: "object",
  required: ["type", "status", "reason", "message", "lastTransitionTime"],
  properties: {
    type: { type: "string" },
    status: { type: "string", enum: ["True", "False", "Unknown"] },
    reason: { type: "string" },
    message: { type: "string" },
    lastTransitionTime: { type: "string", format: "date-time" },
    observedGeneration: { type: "integer", format: "int64", minimum: 0 },
  },
};

const count = (description: string): Record<string, unknown> => ({ type: "integer", format: "int64", minimum: 0, description });

export const ADDRESS_POOL_CRD_NAME = `${ADDRESS_POOL.plural}.${ADDRESS_POOL.group}`;

export function addressPoolCrd(labels: Record<string, string>): Manifest {
  return commented(
    "VIP mode's address pools (berth.dev/v1alpha1 AddressPool, cluster-scoped). `kubectl get addresspools` shows\n" +
    "each pool's addresses in use and free per family and whether it is Valid; an Invalid pool's last valid spec keeps\n" +
    "serving.",
    {
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: ADDRESS_POOL_CRD_NAME, labels },
      spec: {
        group: ADDRESS_POOL.group,
        scope: "Cluster",
        names: {
          kind: ADDRESS_POOL.kind,
          listKind: `${ADDRESS_POOL.kind}List`,
          plural: ADDRESS_POOL.plural,
          singular: ADDRESS_POOL.singular,
          shortNames: [...ADDRESS_POOL.shortNames],
        },
        versions: [{
          name: ADDRESS_POOL.version,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: "Addresses", type: "string", jsonPath: ".spec.addresses", description: "CIDRs and ranges" },
            // The controller writes exactly one condition, Valid, so index 0 is it: a filter expression
            // ([?(@.type=="Valid")]) is not a simple JSONPath every table converter evaluates.
            { name: "Valid", type: "string", jsonPath: ".status.conditions[0].status" },
            { name: "IPv4 Assigned", type: "integer", jsonPath: ".status.assignedIPv4" },
            { name: "IPv4 Available", type: "integer", jsonPath: ".status.availableIPv4" },
            { name: "IPv6 Assigned", type: "integer", jsonPath: ".status.assignedIPv6" },
            { name: "IPv6 Available", type: "integer", jsonPath: ".status.availableIPv6" },
            { name: "Priority", type: "integer", jsonPath: ".spec.priority", priority: 1 },
            { name: "Auto Assign", type: "boolean", jsonPath: ".spec.autoAssign", priority: 1 },
            { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
          ],
          schema: {
            openAPIV3Schema: {
              type: "object",
              description: "Addresses VIP-mode Services (berth.dev/mode: vip) are given, and where they are announced.",
              required: ["spec"],
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                spec: {
                  type: "object",
                  required: ["addresses"],
                  properties: {
                    addresses: {
                      type: "array",
                      minItems: 1,
                      description: "CIDRs (192.168.1.240/28, fd00::/120), single addresses and inclusive ranges " +
                        "(192.168.1.240-192.168.1.250), of either family.",
                      items: { type: "string", minLength: 1 },
                    },
                    autoAssign: {
                      type: "boolean", default: true,
                      description: "Whether Services that name no pool and no address may be given one from this pool.",
                    },
                    avoidBuggyIPs: {
                      type: "boolean", default: false,
                      description: "Skip IPv4 addresses ending in .0 and .255 (some consumer routers drop them).",
                    },
                    priority: {
                      type: "integer", format: "int32", default: 0,
                      description: "Pools are tried lowest priority first, then by name.",
                    },
                    serviceAllocation: {
                      type: "object",
                      description: "Which Services may take addresses from this pool; absent lists do not restrict.",
                      properties: {
                        namespaces: { type: "array", items: { type: "string" } },
                        namespaceSelectors: selectors("Namespaces by label (any one matches)."),
                        serviceSelectors: selectors("Services by label (any one matches)."),
                      },
                    },
                    announce: {
                      type: "object",
                      description: "Where this pool's addresses are announced; absent lists allow every eligible node.",
                      properties: {
                        nodeSelectors: selectors("Nodes by label (any one matches)."),
                        interfaces: { type: "array", items: { type: "string" }, description: "Interface names on the node." },
                      },
                    },
                  },
                },
                status: {
                  type: "object",
                  properties: {
                    assignedIPv4: count("IPv4 addresses given to Services."),
                    availableIPv4: count("IPv4 addresses still free."),
                    assignedIPv6: count("IPv6 addresses given to Services."),
                    availableIPv6: count("IPv6 addresses still free (saturates at 2^53-1)."),
                    conditions: {
                      type: "array",
                      items: condition,
                      "x-kubernetes-list-type": "map",
                      "x-kubernetes-list-map-keys": ["type"],
                    },
                  },
                },
              },
            },
          },
        }],
      },
    },
  );
}
