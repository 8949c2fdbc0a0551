// `berth convert metallb`: MetalLB layer-2 configuration to berth AddressPools (src/lib/vip/address-pool.ts). Pure:
// YAML text in, the pools and what could not be carried over out. It reads both forms MetalLB has had:
// - the custom resources (metallb.io/v1beta1, MetalLB 0.13+; api/v1beta1/ipaddresspool_types.go and
//   l2advertisement_types.go): IPAddressPool (addresses, autoAssign, avoidBuggyIPs, serviceAllocation) and
//   L2Advertisement (ipAddressPools, ipAddressPoolSelectors, nodeSelectors, interfaces);
// - the older ConfigMap `config` (MetalLB before 0.13; internal/config/config.go): data.config, a YAML document with
//   `address-pools` (name, protocol layer2|bgp, addresses, auto-assign, avoid-buggy-ips).
// BGP (pools only BGP announces, BGPPeer, BGPAdvertisement, BFDProfile, Community, `peers`) has no berth equivalent:
// each such object is named in `dropped`, never silently left out. Bad input (not YAML, a pool with a bad address)
// is a ConvertError naming the object and field.
import * as yaml from "js-yaml";

import { parsePool } from "../controller/vip/pools.js";
import { selectorMatches } from "../controller/vip/allocator.js";
import { ADDRESS_POOL, type AddressPool, type AddressPoolAnnouncement, type AddressPoolServiceAllocation } from "../lib/vip/address-pool.js";
import type { V1LabelSelector } from "@kubernetes/client-node";

export class ConvertError extends Error {
  override name = "ConvertError";
}

export interface ConvertResult {
  pools: AddressPool[];
  /** What was not carried over, one line each ("BGPPeer metallb-system/peer1: ..."). */
  dropped: string[];
  /** What was carried over with a change of meaning, one line each. */
  notes: string[];
}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

interface SourcePool {
  name: string;
  /** Where it came from, for messages. */
  from: string;
  labels: Record<string, string>;
  addresses: string[];
  autoAssign?: boolean;
  avoidBuggyIPs?: boolean;
  priority?: number;
  serviceAllocation?: AddressPoolServiceAllocation;
  /** The ConfigMap's protocol; CRD pools are announced by whichever advertisements select them. */
  protocol?: "layer2" | "bgp";
}

interface SourceAdvertisement {
  from: string;
  pools: string[];
  poolSelectors: V1LabelSelector[];
  nodeSelectors: V1LabelSelector[];
  interfaces: string[];
}

/** MetalLB kinds that are BGP (or its helpers): berth announces in layer 2 only. */
const BGP_KINDS = new Set(["BGPPeer", "BGPAdvertisement", "BFDProfile", "Community"]);

export function convertMetallb(text: string): ConvertResult {
  let docs: unknown[];
  try {
    docs = yaml.loadAll(text);
  } catch (error) {
    throw new ConvertError(`the input is not YAML: ${(error as Error).message.split("\n")[0]}`);
  }
  const objects = docs.flatMap((d) => (isObj(d) && d.kind === "List" && Array.isArray(d.items) ? d.items : [d])).filter((d) => d !== null && d !== undefined);
  if (objects.length === 0) throw new ConvertError("the input holds no objects; give MetalLB's IPAddressPool and L2Advertisement objects, or its `config` ConfigMap");

  const pools: SourcePool[] = [];
  const advertisements: SourceAdvertisement[] = [];
  const bgpAdvertised = new Set<string>();
  const dropped: string[] = [];
  const notes: string[] = [];
  let recognised = 0;

  objects.forEach((object, index) => {
    if (!isObj(object)) throw new ConvertError(`document ${index + 1} is not a Kubernetes object`);
    const kind = String(object.kind ?? "");
    const meta = isObj(object.metadata) ? object.metadata : {};
    const name = String(meta.name ?? "");
    const from = `${kind} ${meta.namespace ? `${String(meta.namespace)}/` : ""}${name}`;
    const spec = isObj(object.spec) ? object.spec : {};
    const apiGroup = String(object.apiVersion ?? "").split("/")[0];
    if (kind === "IPAddressPool" && apiGroup === "metallb.io") {
      recognised++;
      pools.push({
        name, from, labels: isObj(meta.labels) ? (meta.labels as Record<string, string>) : {},
        addresses: stringList(spec.addresses, `${from}: spec.addresses`),
        ...optionalBool(spec.autoAssign, "autoAssign", `${from}: spec.autoAssign`),
        ...optionalBool(spec.avoidBuggyIPs, "avoidBuggyIPs", `${from}: spec.avoidBuggyIPs`),
        ...serviceAllocation(spec.serviceAllocation, from),
      });
    } else if (kind === "L2Advertisement" && apiGroup === "metallb.io") {
      recognised++;
      advertisements.push({
        from,
        pools: stringList(spec.ipAddressPools ?? [], `${from}: spec.ipAddressPools`),
        poolSelectors: selectorList(spec.ipAddressPoolSelectors, `${from}: spec.ipAddressPoolSelectors`),
        nodeSelectors: selectorList(spec.nodeSelectors, `${from}: spec.nodeSelectors`),
        interfaces: stringList(spec.interfaces ?? [], `${from}: spec.interfaces`),
      });
    } else if (BGP_KINDS.has(kind) && apiGroup === "metallb.io") {
      recognised++;
      dropped.push(`${from}: BGP is not carried over (berth announces in layer 2 only: ARP and NDP)`);
      if (kind === "BGPAdvertisement") for (const pool of stringList(spec.ipAddressPools ?? [], `${from}: spec.ipAddressPools`)) bgpAdvertised.add(pool);
    } else if (kind === "ConfigMap" && isObj(object.data) && typeof object.data.config === "string") {
      recognised++;
      readConfigMap(object.data.config, from, pools, dropped);
    } else {
      dropped.push(`${from || `document ${index + 1}`}: not MetalLB configuration, left out`);
    }
  });
  if (recognised === 0) throw new ConvertError("the input holds no MetalLB configuration (IPAddressPool, L2Advertisement or the `config` ConfigMap)");

  const anyPriority = pools.some((p) => (p.priority ?? 0) > 0);
  const maxPriority = Math.max(0, ...pools.map((p) => p.priority ?? 0));
  const out: AddressPool[] = [];
  const seen = new Set<string>();
  for (const pool of pools) {
    if (seen.has(pool.name)) throw new ConvertError(`${pool.from}: a second pool named ${pool.name}`);
    seen.add(pool.name);
    if (pool.protocol === "bgp") {
      dropped.push(`${pool.from}: protocol bgp is not carried over (berth announces in layer 2 only)`);
      continue;
    }
    let announce: AddressPoolAnnouncement = {};
    if (pool.protocol === undefined) {
      const selecting = advertisements.filter((a) => selects(a, pool));
      if (selecting.length === 0) {
        if (bgpAdvertised.has(pool.name)) {
          dropped.push(`${pool.from}: announced by BGP only, which berth does not do`);
          continue;
        }
        notes.push(`${pool.from}: no L2Advertisement selects it, so MetalLB gives out its addresses without announcing them; berth will announce them`);
      } else {
        announce = mergeAnnouncements(selecting, pool, notes);
      }
    }
    const spec: AddressPool["spec"] = { addresses: pool.addresses };
    if (pool.autoAssign !== undefined) spec.autoAssign = pool.autoAssign;
    if (pool.avoidBuggyIPs) spec.avoidBuggyIPs = true;
    // MetalLB tries pools with a priority first (lowest number first) and pools without one (0) last; berth tries
    // lower numbers first with 0 the default, so an unprioritised pool goes after every prioritised one.
    if (anyPriority) spec.priority = (pool.priority ?? 0) > 0 ? pool.priority as number : maxPriority + 1;
    if (pool.serviceAllocation && Object.keys(pool.serviceAllocation).length > 0) spec.serviceAllocation = pool.serviceAllocation;
    if (Object.keys(announce).length > 0) spec.announce = announce;
    const converted: AddressPool = {
      apiVersion: `${ADDRESS_POOL.group}/${ADDRESS_POOL.version}`,
      kind: ADDRESS_POOL.kind,
      metadata: { name: pool.name, ...(Object.keys(pool.labels).length > 0 ? { labels: pool.labels } : {}) },
      spec,
    };
    const check = parsePool(converted);
    if (!check.ok) throw new ConvertError(`${pool.from}: ${check.message}`);
    out.push(converted);
  }
  return { pools: out, dropped, notes };
}

/** Whether an L2Advertisement announces this pool (MetalLB: no pools and no selectors means every pool). */
function selects(ad: SourceAdvertisement, pool: SourcePool): boolean {
  if (ad.pools.length === 0 && ad.poolSelectors.length === 0) return true;
  return ad.pools.includes(pool.name) || ad.poolSelectors.some((s) => selectorMatches(s as never, pool.labels));
}

/**
 * One pool's announcement from every L2Advertisement selecting it: MetalLB announces from the union of their nodes
 * and interfaces, so an advertisement without node selectors (every node) or without interfaces (every interface)
 * makes the whole set unrestricted.
 */
function mergeAnnouncements(ads: SourceAdvertisement[], pool: SourcePool, notes: string[]): AddressPoolAnnouncement {
  const announce: AddressPoolAnnouncement = {};
  if (ads.every((a) => a.nodeSelectors.length > 0)) announce.nodeSelectors = ads.flatMap((a) => a.nodeSelectors);
  if (ads.every((a) => a.interfaces.length > 0)) announce.interfaces = [...new Set(ads.flatMap((a) => a.interfaces))];
  if (ads.length > 1 && announce.nodeSelectors !== undefined && announce.interfaces !== undefined &&
    new Set(ads.map((a) => JSON.stringify(a.interfaces))).size > 1) {
    notes.push(`${pool.from}: ${ads.map((a) => a.from).join(", ")} pair different nodes with different interfaces; ` +
      "berth announces on any of the interfaces from any of the nodes");
  }
  return announce;
}

function readConfigMap(text: string, from: string, pools: SourcePool[], dropped: string[]): void {
  let config: unknown;
  try {
    config = yaml.load(text);
  } catch (error) {
    throw new ConvertError(`${from}: data.config is not YAML: ${(error as Error).message.split("\n")[0]}`);
  }
  if (!isObj(config)) throw new ConvertError(`${from}: data.config is not a YAML mapping`);
  for (const key of Object.keys(config)) {
    if (key === "peers" || key === "bgp-communities") dropped.push(`${from}: ${key} is BGP and is not carried over`);
    else if (key !== "address-pools") dropped.push(`${from}: ${key} is not known, left out`);
  }
  const list = config["address-pools"] ?? [];
  if (!Array.isArray(list)) throw new ConvertError(`${from}: address-pools is not a list`);
  list.forEach((item: unknown, index) => {
    const at = `${from}: address-pools[${index}]`;
    if (!isObj(item)) throw new ConvertError(`${at} is not a mapping`);
    const protocol = item.protocol;
    if (protocol !== "layer2" && protocol !== "bgp") throw new ConvertError(`${at}.protocol is ${JSON.stringify(protocol)}, not layer2 or bgp`);
    if (Array.isArray(item["bgp-advertisements"]) && protocol === "layer2") dropped.push(`${at}.bgp-advertisements: BGP, not carried over`);
    pools.push({
      name: String(item.name ?? ""),
      from: `${from} address-pools[${index}] (${String(item.name ?? "")})`,
      labels: {},
      addresses: stringList(item.addresses, `${at}.addresses`),
      ...optionalBool(item["auto-assign"], "autoAssign", `${at}.auto-assign`),
      ...optionalBool(item["avoid-buggy-ips"], "avoidBuggyIPs", `${at}.avoid-buggy-ips`),
      protocol,
    });
  });
}

function serviceAllocation(value: unknown, from: string): Pick<SourcePool, "priority" | "serviceAllocation"> {
  if (value === undefined || value === null) return {};
  if (!isObj(value)) throw new ConvertError(`${from}: spec.serviceAllocation is not a mapping`);
  const out: Pick<SourcePool, "priority" | "serviceAllocation"> = {};
  if (value.priority !== undefined) {
    if (typeof value.priority !== "number" || !Number.isInteger(value.priority) || value.priority < 0) {
      throw new ConvertError(`${from}: spec.serviceAllocation.priority ${JSON.stringify(value.priority)} is not a whole number >= 0`);
    }
    out.priority = value.priority;
  }
  const allocation: AddressPoolServiceAllocation = {};
  if (value.namespaces !== undefined) allocation.namespaces = stringList(value.namespaces, `${from}: spec.serviceAllocation.namespaces`);
  if (value.namespaceSelectors !== undefined) allocation.namespaceSelectors = selectorList(value.namespaceSelectors, `${from}: spec.serviceAllocation.namespaceSelectors`);
  if (value.serviceSelectors !== undefined) allocation.serviceSelectors = selectorList(value.serviceSelectors, `${from}: spec.serviceAllocation.serviceSelectors`);
  if (Object.keys(allocation).length > 0) out.serviceAllocation = allocation;
  return out;
}

function stringList(value: unknown, at: string): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) throw new ConvertError(`${at} must be a list of strings`);
  return value as string[];
}

function selectorList(value: unknown, at: string): V1LabelSelector[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some((v) => !isObj(v))) throw new ConvertError(`${at} must be a list of label selectors`);
  return value as V1LabelSelector[];
}

function optionalBool<K extends string>(value: unknown, key: K, at: string): Partial<Record<K, boolean>> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "boolean") throw new ConvertError(`${at} must be true or false`);
  return { [key]: value } as Partial<Record<K, boolean>>;
}
