// Services as kube-apiserver 1.32 stores them: v1 defaulting (pkg/apis/core/v1/defaults.go), IP family inference and
// ClusterIP / NodePort allocation (pkg/registry/core/service/storage/alloc.go), type-dependent field wiping and
// immutability on update (pkg/registry/core/service/strategy.go, ValidateServiceUpdate), and status defaulting
// (ipMode "VIP", KEP-1860). Controllers and kubectl see the same fields, the same allocations and the same 422s as
// on a real cluster.
//
// One deliberate difference: kube-apiserver picks free ClusterIPs and NodePorts at random; we take the next free one
// in order, so tests and demos are reproducible. Like kube (KEP-3070, KEP-3668) dynamic allocation starts above a
// small "static" band at the bottom of each range, which is left for explicitly requested values.
import ipaddr from "ipaddr.js";

import { parseCidr, parseIp } from "../../lib/addresses.js";
import { ApiError, type KubeObject } from "./types.js";
import { deepEqual, FieldErrors, invalidError, isRecord, validateConditions, validateServiceSpec } from "./validation.js";

export type IpFamily = "IPv4" | "IPv6";

export interface ServiceAllocatorOptions {
  /**
   * Service CIDR per family (`--service-cluster-ip-range`). When neither is given the server is dual-stack with
   * DEFAULT_SERVICE_CIDRS. A family left out is "not configured on this cluster", exactly as kube answers.
   */
  serviceCidrs: { ipv4?: string; ipv6?: string };
  /** `--service-node-port-range`, inclusive; default 30000-32767. */
  nodePortRange?: [number, number];
  /** The cluster's primary family (the first `--service-cluster-ip-range`); default IPv4 when configured. */
  primaryFamily?: IpFamily;
}

/** k3s's default service CIDR for IPv4; a ULA /112 for IPv6 (kube accepts IPv6 service ranges of /108 or longer). */
export const DEFAULT_SERVICE_CIDRS = { ipv4: "10.43.0.0/16", ipv6: "fd00:43::/112" } as const;
export const DEFAULT_NODE_PORT_RANGE: [number, number] = [30000, 32767];

const SERVICE_KIND = { group: "", kind: "Service" };

type Spec = Record<string, unknown> & {
  type?: string;
  clusterIP?: string;
  clusterIPs?: string[];
  ipFamilies?: IpFamily[];
  ipFamilyPolicy?: string;
  ports?: Port[];
  selector?: Record<string, string>;
  healthCheckNodePort?: number;
  externalTrafficPolicy?: string;
  allocateLoadBalancerNodePorts?: boolean;
  loadBalancerClass?: string;
};
type Port = Record<string, unknown> & { name?: string; port?: number; protocol?: string; nodePort?: number; targetPort?: number | string };

/** Why an allocator refused a value; the message is kube's allocator error text. */
class AllocationError extends Error {
  constructor(message: string, readonly full = false) {
    super(message);
  }
}

/** One contiguous pool of numbers (IP offsets or ports) with a bitmap of used entries. */
class Pool {
  private readonly used = new Set<number>();
  private cursor: number;

  constructor(readonly size: number, private readonly staticBand: number) {
    this.cursor = Math.min(staticBand, Math.max(0, size - 1));
  }

  has(index: number): boolean {
    return this.used.has(index);
  }

  take(index: number, alreadyMessage: string): void {
    if (this.used.has(index)) throw new AllocationError(alreadyMessage);
    this.used.add(index);
  }

  /** The next free entry, dynamic band first, then the static band (KEP-3070's order). */
  next(): number {
    const dynamic = this.size - this.staticBand;
    for (let i = 0; i < dynamic; i++) {
      const index = this.staticBand + ((this.cursor - this.staticBand + i) % dynamic);
      if (!this.used.has(index)) {
        this.used.add(index);
        this.cursor = index + 1 >= this.size ? this.staticBand : index + 1;
        return index;
      }
    }
    for (let index = 0; index < this.staticBand; index++) {
      if (!this.used.has(index)) {
        this.used.add(index);
        return index;
      }
    }
    throw new AllocationError("range is full", true);
  }

  release(index: number): void {
    this.used.delete(index);
  }

  get free(): number {
    return this.size - this.used.size;
  }
}

/** KEP-3070 static band for service IPs: min(max(16, size/16), 256). */
const ipStaticBand = (size: number) => Math.min(Math.max(16, Math.floor(size / 16)), 256, size);
/** KEP-3668 static band for NodePorts: min(max(16, size/32), 128). */
const portStaticBand = (size: number) => Math.min(Math.max(16, Math.floor(size / 32)), 128, size);

class IpPool {
  private readonly pool: Pool;
  private readonly first: bigint;
  readonly cidr: string;

  constructor(readonly family: IpFamily, cidrText: string) {
    const cidr = parseCidr(cidrText);
    const bits = family === "IPv4" ? 32 : 128;
    if ((cidr.family === "ipv4" ? "IPv4" : "IPv6") !== family) throw new Error(`service CIDR ${cidrText} is not ${family}`);
    const hostBits = bits - cidr.prefixLength;
    // kube refuses service ranges above 2^20 addresses (IPv6 /108); the legacy bitmap allocator cannot hold more.
    if (hostBits > 20) throw new Error(`service CIDR ${cidrText} is too large; the prefix must be /${bits - 20} or longer`);
    if (hostBits < 2) throw new Error(`service CIDR ${cidrText} is too small`);
    this.cidr = cidr.text;
    // The network address is never handed out, nor IPv4's broadcast address (ipallocator.NewCIDRRange).
    this.first = bytesToBigInt(cidr.bytes) + 1n;
    const size = 2 ** hostBits - (family === "IPv4" ? 2 : 1);
    this.pool = new Pool(size, ipStaticBand(size));
  }

  indexOf(ip: string): number | undefined {
    const parsed = parseIp(ip);
    if ((parsed.family === "ipv4" ? "IPv4" : "IPv6") !== this.family) return undefined;
    const offset = bytesToBigInt(parsed.bytes) - this.first;
    return offset >= 0n && offset < BigInt(this.pool.size) ? Number(offset) : undefined;
  }

  allocate(ip: string): string {
    const index = this.indexOf(ip);
    const canonical = parseIp(ip).text;
    if (index === undefined) {
      throw new AllocationError(`the provided IP (${canonical}) is not in the valid range. The range of valid IPs is ${this.cidr}`);
    }
    this.pool.take(index, "provided IP is already allocated");
    return canonical;
  }

  allocateNext(): string {
    return this.ipAt(this.pool.next());
  }

  release(ip: string): void {
    const index = this.indexOf(ip);
    if (index !== undefined) this.pool.release(index);
  }

  isAllocated(ip: string): boolean {
    const index = this.indexOf(ip);
    return index !== undefined && this.pool.has(index);
  }

  get free(): number {
    return this.pool.free;
  }

  private ipAt(index: number): string {
    const value = this.first + BigInt(index);
    const length = this.family === "IPv4" ? 4 : 16;
    const bytes: number[] = [];
    for (let i = length - 1; i >= 0; i--) bytes.push(Number((value >> BigInt(i * 8)) & 0xffn));
    const address = ipaddr.fromByteArray(bytes);
    return address.kind() === "ipv6" ? (address as ipaddr.IPv6).toRFC5952String() : address.toString();
  }
}

class PortPool {
  private readonly pool: Pool;

  constructor(readonly min: number, readonly max: number) {
    if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max > 65535 || min > max) {
      throw new Error(`node port range ${min}-${max} is not a valid port range`);
    }
    const size = max - min + 1;
    this.pool = new Pool(size, portStaticBand(size));
  }

  allocate(port: number): void {
    if (port < this.min || port > this.max) {
      throw new AllocationError(`provided port is not in the valid range. The range of valid ports is ${this.min}-${this.max}`);
    }
    this.pool.take(port - this.min, "provided port is already allocated");
  }

  allocateNext(): number {
    return this.pool.next() + this.min;
  }

  release(port: number): void {
    if (port >= this.min && port <= this.max) this.pool.release(port - this.min);
  }

  isAllocated(port: number): boolean {
    return port >= this.min && port <= this.max && this.pool.has(port - this.min);
  }

  get free(): number {
    return this.pool.free;
  }
}

/** Allocations made while preparing one request: undone if the request fails, old values freed if it succeeds. */
class Transaction {
  private readonly undo: (() => void)[] = [];
  private readonly onCommit: (() => void)[] = [];

  allocated(revert: () => void): void {
    this.undo.push(revert);
  }

  releaseOnCommit(release: () => void): void {
    this.onCommit.push(release);
  }

  revert(): void {
    for (const fn of this.undo.reverse()) fn();
  }

  commit(): void {
    for (const fn of this.onCommit) fn();
  }
}

/**
 * ClusterIP and NodePort allocation plus the defaulting and validation kube-apiserver applies to Services. Keeps
 * its own record of what is in use: call `restore` for every stored Service when (re)loading a store, `release` when
 * a Service is finally deleted. prepareCreate/prepareUpdate either allocate everything they need or nothing (they
 * throw, having undone their allocations).
 */
export class ServiceAllocator {
  private readonly pools = new Map<IpFamily, IpPool>();
  private readonly ports: PortPool;
  readonly primaryFamily: IpFamily;

  constructor(opts: ServiceAllocatorOptions) {
    const cidrs = opts.serviceCidrs.ipv4 === undefined && opts.serviceCidrs.ipv6 === undefined ? DEFAULT_SERVICE_CIDRS : opts.serviceCidrs;
    if (cidrs.ipv4 !== undefined) this.pools.set("IPv4", new IpPool("IPv4", cidrs.ipv4));
    if (cidrs.ipv6 !== undefined) this.pools.set("IPv6", new IpPool("IPv6", cidrs.ipv6));
    const primary = opts.primaryFamily ?? (this.pools.has("IPv4") ? "IPv4" : "IPv6");
    if (!this.pools.has(primary)) throw new Error(`primary family ${primary} has no service CIDR`);
    this.primaryFamily = primary;
    const [min, max] = opts.nodePortRange ?? DEFAULT_NODE_PORT_RANGE;
    this.ports = new PortPool(min, max);
  }

  /** The configured service CIDRs, primary first. */
  get serviceCidrs(): string[] {
    const rank = (p: IpPool) => (p.family === this.primaryFamily ? 0 : 1);
    return [...this.pools.values()].sort((a, b) => rank(a) - rank(b)).map((p) => p.cidr);
  }

  /** Free entries left, for tests and metrics. */
  capacity(): { ipv4?: number; ipv6?: number; nodePorts: number } {
    return { ipv4: this.pools.get("IPv4")?.free, ipv6: this.pools.get("IPv6")?.free, nodePorts: this.ports.free };
  }

  /**
   * A Service about to be created: defaults filled, spec validated (422 with kube's causes), IP families inferred
   * against the cluster's families, ClusterIP(s), NodePorts and healthCheckNodePort allocated (requested values
   * validated and reserved), status reset to `{loadBalancer: {}}`. Returns a new object; the argument is untouched.
   * If the store then refuses the object (e.g. the name is taken), call `release` on the returned object.
   */
  prepareCreate(svc: KubeObject): KubeObject {
    const out = structuredClone(svc);
    const spec = specOf(out);
    applyServiceDefaults(out);
    syncClusterIP(spec);
    const errs = new FieldErrors();
    validateServiceSpec(spec, errs);
    errs.throwIfAny(SERVICE_KIND, out.metadata.name);
    out.status = { loadBalancer: {} };
    const txn = new Transaction();
    try {
      this.initIPFamilyFields(spec, undefined, out.metadata.name);
      this.allocClusterIPs(spec, txn, out.metadata.name);
      if (needsNodePort(spec)) this.initNodePorts(spec, txn, out.metadata.name);
      if (needsHealthCheck(spec)) this.allocHealthCheckNodePort(spec, txn);
    } catch (error) {
      txn.revert();
      throw error;
    }
    txn.commit();
    return out;
  }

  /**
   * An update (PUT, or a PATCH's result) of a stored Service: defaults, values the client left out carried over
   * from `old` (clusterIP(s), nodePorts by port name, healthCheckNodePort — what lets `kubectl apply` PUT a
   * manifest without them), type-dependent fields wiped when the type no longer uses them, immutable fields
   * enforced (422), then allocations adjusted: allocated for a new NodePort/LoadBalancer or dual-stack upgrade,
   * released when the type or family count no longer needs them. Status is kept from `old`.
   */
  prepareUpdate(old: KubeObject, next: KubeObject): KubeObject {
    const out = structuredClone(next);
    const spec = specOf(out);
    const oldSpec = specOf(structuredClone(old));
    applyServiceDefaults(out);
    out.status = structuredClone(old.status ?? { loadBalancer: {} });
    patchAllocatedValues(spec, oldSpec);
    normalizeClusterIPs(spec, oldSpec);
    dropTypeDependentFields(out, oldSpec);
    const name = out.metadata.name;
    const errs = new FieldErrors();
    validateServiceSpec(spec, errs);
    validateServiceUpdate(spec, oldSpec, errs);
    errs.throwIfAny(SERVICE_KIND, name);
    const txn = new Transaction();
    try {
      this.initIPFamilyFields(spec, oldSpec, name);
      this.updateClusterIPs(spec, oldSpec, txn, name);
      this.updateNodePorts(spec, oldSpec, txn, name);
      this.updateHealthCheckNodePort(spec, oldSpec, txn, name);
    } catch (error) {
      txn.revert();
      throw error;
    }
    txn.commit();
    syncClusterIP(spec);
    return out;
  }

  /**
   * A write to services/status: spec kept from `old` (serviceStatusStrategy), metadata and status from `next`,
   * `status.loadBalancer.ingress[].ipMode` defaulted to "VIP" where an `ip` is set on a LoadBalancer Service (as
   * 1.32 does), and the ingress list and conditions validated (422 with `status.loadBalancer.ingress[i]...` and
   * `status.conditions[i]...` causes, as ValidateServiceStatusUpdate gives them).
   */
  prepareStatus(old: KubeObject, next: KubeObject): KubeObject {
    const out: KubeObject = {
      ...structuredClone(old),
      ...structuredClone(next),
      metadata: structuredClone(next.metadata ?? old.metadata),
      spec: structuredClone(old.spec),
    };
    const status = isRecord(out.status) ? out.status : {};
    if (!isRecord(status.loadBalancer)) status.loadBalancer = {};
    out.status = status;
    applyServiceDefaults(out);
    const errs = new FieldErrors();
    validateLoadBalancerStatus(status.loadBalancer as Record<string, unknown>, errs);
    validateConditions(status.conditions, "status.conditions", errs);
    errs.throwIfAny(SERVICE_KIND, out.metadata.name);
    return out;
  }

  /** Frees a deleted Service's ClusterIPs, NodePorts and healthCheckNodePort. */
  release(svc: KubeObject): void {
    const spec = specOf(structuredClone(svc));
    for (const ip of spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : [])) this.releaseIp(ip);
    for (const port of nodePortsOf(spec)) this.ports.release(port);
    if (spec.healthCheckNodePort) this.ports.release(spec.healthCheckNodePort);
  }

  /**
   * Undoes a `prepareUpdate` whose result will not be stored after all (validation failed later, dry run, lost
   * race): frees what `prepared` holds and `old` doesn't, takes back what `old` holds and `prepared` released.
   */
  revertUpdate(old: KubeObject, prepared: KubeObject): void {
    const before = allocationsOf(specOf(structuredClone(old)));
    const after = allocationsOf(specOf(structuredClone(prepared)));
    for (const ip of after.ips) if (!before.ips.includes(ip)) this.releaseIp(ip);
    for (const port of after.ports) if (!before.ports.includes(port)) this.ports.release(port);
    this.restore(old);
  }

  /** Marks a stored Service's allocations as used (when loading objects that were allocated before). */
  restore(svc: KubeObject): void {
    const spec = specOf(structuredClone(svc));
    for (const ip of spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : [])) {
      const pool = this.poolFor(ip);
      if (pool && !pool.isAllocated(ip)) pool.allocate(ip);
    }
    for (const port of [...nodePortsOf(spec), ...(spec.healthCheckNodePort ? [spec.healthCheckNodePort] : [])]) {
      if (port >= this.ports.min && port <= this.ports.max && !this.ports.isAllocated(port)) this.ports.allocate(port);
    }
  }

  private poolFor(ip: string): IpPool | undefined {
    if (ip === "None" || ip === "") return undefined;
    try {
      return this.pools.get(parseIp(ip).family === "ipv4" ? "IPv4" : "IPv6");
    } catch {
      return undefined;
    }
  }

  private releaseIp(ip: string): void {
    this.poolFor(ip)?.release(ip);
  }

  /** alloc.go initIPFamilyFields: default ipFamilyPolicy and ipFamilies against the cluster's families. */
  private initIPFamilyFields(spec: Spec, old: Spec | undefined, name: string | undefined): void {
    if (spec.type === "ExternalName") return;
    if (old && isMatchingPreferDualStack(spec, old)) return;
    if (spec.ipFamilyPolicy === undefined || spec.ipFamilyPolicy === null) {
      if (old?.ipFamilyPolicy) spec.ipFamilyPolicy = old.ipFamilyPolicy;
      else if (spec.clusterIP === "None" && Object.keys(spec.selector ?? {}).length === 0) spec.ipFamilyPolicy = "RequireDualStack";
      else spec.ipFamilyPolicy = "SingleStack";
    }
    const errs = new FieldErrors();
    const clusterIPs = spec.clusterIPs ?? [];
    spec.ipFamilies = [...(spec.ipFamilies ?? [])];
    if (old) {
      if (spec.ipFamilyPolicy === "SingleStack") {
        if (deepEqual(old.clusterIPs, spec.clusterIPs) && clusterIPs.length > 1) spec.clusterIPs = clusterIPs.slice(0, 1);
        if (deepEqual(old.ipFamilies, spec.ipFamilies) && spec.ipFamilies.length > 1) spec.ipFamilies = spec.ipFamilies.slice(0, 1);
      } else {
        if ((old.clusterIPs ?? []).length > (spec.clusterIPs ?? []).length && (spec.clusterIPs ?? []).length > 0) {
          errs.invalid("spec.ipFamilyPolicy", spec.ipFamilyPolicy, "must be 'SingleStack' to release the secondary cluster IP");
        }
        if ((old.ipFamilies ?? []).length > spec.ipFamilies.length && spec.ipFamilies.length > 0) {
          errs.invalid("spec.ipFamilyPolicy", spec.ipFamilyPolicy, "must be 'SingleStack' to release the secondary IP family");
        }
      }
    }
    if (spec.ipFamilyPolicy === "SingleStack") {
      if ((spec.clusterIPs ?? []).length === 2) {
        errs.invalid("spec.ipFamilyPolicy", spec.ipFamilyPolicy, "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified");
      }
      if (spec.ipFamilies.length === 2) {
        errs.invalid("spec.ipFamilyPolicy", spec.ipFamilyPolicy, "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified");
      }
    }
    (spec.clusterIPs ?? []).every((ip, i) => {
      if (ip === "None") return false;
      const family: IpFamily = parseIp(ip).family === "ipv4" ? "IPv4" : "IPv6";
      if (i >= (spec.ipFamilies ?? []).length) {
        if (!this.pools.has(family)) errs.invalid(`spec.clusterIPs[${i}]`, spec.clusterIPs, `${family} is not configured on this cluster`);
        else spec.ipFamilies?.push(family);
      }
      return true;
    });
    errs.throwIfAny(SERVICE_KIND, name);
    if (spec.clusterIP === "None" && Object.keys(spec.selector ?? {}).length === 0) {
      // Headless and selectorless: families are for DNS only, and may name families the cluster lacks.
      if (spec.ipFamilies.length === 0) spec.ipFamilies = [this.primaryFamily];
      if (spec.ipFamilies.length < 2 && spec.ipFamilyPolicy !== "SingleStack") spec.ipFamilies.push(otherFamily(spec.ipFamilies[0]));
      return;
    }
    if (spec.ipFamilyPolicy === "RequireDualStack" && this.pools.size < 2) {
      errs.invalid("spec.ipFamilyPolicy", spec.ipFamilyPolicy, "this cluster is not configured for dual-stack services");
    }
    spec.ipFamilies.forEach((family, i) => {
      if (!this.pools.has(family)) errs.invalid(`spec.ipFamilies[${i}]`, family, "not configured on this cluster");
    });
    errs.throwIfAny(SERVICE_KIND, name);
    if (spec.ipFamilies.length === 0) spec.ipFamilies = [this.primaryFamily];
    if (spec.ipFamilyPolicy !== "SingleStack" && spec.ipFamilies.length === 1 && this.pools.size === 2) {
      spec.ipFamilies.push(otherFamily(spec.ipFamilies[0]));
    }
  }

  private allocClusterIPs(spec: Spec, txn: Transaction, name: string | undefined): void {
    if (spec.type === "ExternalName") return;
    const families = spec.ipFamilies ?? [];
    const ips = [...(spec.clusterIPs ?? [])];
    if (ips[0] === "None") return;
    families.forEach((family, i) => {
      ips[i] = this.allocIp(family, ips[i] ?? "", ips, txn, name);
    });
    spec.clusterIPs = ips;
    spec.clusterIP = ips[0];
  }

  private allocIp(family: IpFamily, requested: string, all: string[], txn: Transaction, name: string | undefined): string {
    const pool = this.pools.get(family);
    if (!pool) throw new ApiError(500, "InternalError", `Internal error occurred: ${family} is not configured on this cluster`);
    try {
      const ip = requested === "" ? pool.allocateNext() : pool.allocate(requested);
      txn.allocated(() => pool.release(ip));
      // A requested address is stored as the client wrote it (kube does not rewrite "fd00:43:0::a").
      return requested === "" ? ip : requested;
    } catch (error) {
      if (!(error instanceof AllocationError)) throw error;
      if (error.full) {
        throw new ApiError(500, "InternalError", `Internal error occurred: failed to allocate a serviceIP: ${error.message}`);
      }
      throw invalidError(SERVICE_KIND, name, [{
        reason: "FieldValueInvalid", field: "spec.clusterIPs",
        message: `Invalid value: []string{${all.map((ip) => JSON.stringify(ip)).join(", ")}}: failed to allocate IP ${requested}: ${error.message}`,
      }]);
    }
  }

  /** alloc.go initNodePorts: one NodePort per service port number (TCP and UDP on the same port share it). */
  private initNodePorts(spec: Spec, txn: Transaction, name: string | undefined): void {
    const byPort = new Map<number, number>();
    const ports = spec.ports ?? [];
    ports.forEach((port, i) => {
      if (!port.nodePort && !shouldAllocateNodePorts(spec)) return;
      const servicePort = port.port ?? 0;
      const already = byPort.get(servicePort);
      if (already === undefined) {
        const requested = ports.slice(i).find((p) => p.port === servicePort && p.nodePort)?.nodePort ?? 0;
        const np = requested ? this.takePort(requested, `spec.ports[${i}].nodePort`, txn, name) : this.nextPort(txn, "nodePort");
        port.nodePort = np;
        byPort.set(servicePort, np);
      } else if (port.nodePort !== already) {
        if (!port.nodePort) port.nodePort = already;
        else this.takePort(port.nodePort, `spec.ports[${i}].nodePort`, txn, name);
      }
    });
  }

  private takePort(port: number, field: string, txn: Transaction, name: string | undefined): number {
    try {
      this.ports.allocate(port);
    } catch (error) {
      if (!(error instanceof AllocationError)) throw error;
      throw invalidError(SERVICE_KIND, name, [{ reason: "FieldValueInvalid", field, message: `Invalid value: ${port}: ${error.message}` }]);
    }
    txn.allocated(() => this.ports.release(port));
    return port;
  }

  private nextPort(txn: Transaction, what: string): number {
    try {
      const port = this.ports.allocateNext();
      txn.allocated(() => this.ports.release(port));
      return port;
    } catch (error) {
      if (!(error instanceof AllocationError)) throw error;
      throw new ApiError(500, "InternalError", `Internal error occurred: failed to allocate a ${what}: ${error.message}`);
    }
  }

  private allocHealthCheckNodePort(spec: Spec, txn: Transaction): void {
    const requested = spec.healthCheckNodePort ?? 0;
    if (requested) {
      try {
        this.ports.allocate(requested);
        txn.allocated(() => this.ports.release(requested));
      } catch (error) {
        if (!(error instanceof AllocationError)) throw error;
        // sic: kube answers 500 here, not 422 (alloc.go wraps this one in NewInternalError).
        throw new ApiError(500, "InternalError", `Internal error occurred: failed to allocate requested HealthCheck NodePort ${requested}: ${error.message}`);
      }
    } else {
      spec.healthCheckNodePort = this.nextPort(txn, "HealthCheck NodePort");
    }
  }

  /** alloc.go updateClusterIPs: ExternalName transitions, dual-stack upgrade and downgrade. */
  private updateClusterIPs(spec: Spec, old: Spec, txn: Transaction, name: string | undefined): void {
    if (isMatchingPreferDualStack(spec, old)) return;
    if (old.type === "ExternalName" && spec.type !== "ExternalName") {
      this.allocClusterIPs(spec, txn, name);
      return;
    }
    if ((old.clusterIPs ?? [])[0] === "None") return;
    const oldIps = old.clusterIPs ?? [];
    if (old.type !== "ExternalName" && spec.type === "ExternalName") {
      for (const ip of oldIps) txn.releaseOnCommit(() => this.releaseIp(ip));
      return;
    }
    const oldFamilies = old.ipFamilies ?? [];
    const families = spec.ipFamilies ?? [];
    if (oldFamilies.length === 1 && families.length === 2) {
      const ips = [...(spec.clusterIPs ?? [])];
      const family = families[1] as IpFamily;
      ips[1] = this.allocIp(family, ips[1] ?? "", ips, txn, name);
      spec.clusterIPs = ips;
    } else if (oldFamilies.length === 2 && families.length === 1) {
      const secondary = oldIps[1];
      if (secondary) txn.releaseOnCommit(() => this.releaseIp(secondary));
    }
  }

  /** alloc.go txnUpdateNodePorts/updateNodePorts. */
  private updateNodePorts(spec: Spec, old: Spec, txn: Transaction, name: string | undefined): void {
    const oldNumbers = nodePortsOf(old);
    if (needsNodePort(old) && !needsNodePort(spec)) {
      for (const port of oldNumbers) txn.releaseOnCommit(() => this.ports.release(port));
    }
    if (!needsNodePort(spec)) return;
    const taken = new Set<number>();
    const seen = new Set<string>();
    (spec.ports ?? []).forEach((port, i) => {
      if (!port.nodePort && !shouldAllocateNodePorts(spec)) return;
      if (port.nodePort) {
        if (!oldNumbers.includes(port.nodePort) && !taken.has(port.nodePort)) {
          this.takePort(port.nodePort, `spec.ports[${i}].nodePort`, txn, name);
          taken.add(port.nodePort);
        }
      } else {
        port.nodePort = this.nextPort(txn, "nodePort");
      }
      const key = `${port.protocol ?? "TCP"}/${port.nodePort}`;
      if (seen.has(key)) throw new ApiError(500, "InternalError", `Internal error occurred: duplicate nodePort: {${port.protocol ?? "TCP"} ${port.nodePort}}`);
      seen.add(key);
    });
    const newNumbers = nodePortsOf(spec);
    for (const port of oldNumbers) if (!newNumbers.includes(port)) txn.releaseOnCommit(() => this.ports.release(port));
  }

  private updateHealthCheckNodePort(spec: Spec, old: Spec, txn: Transaction, name: string | undefined): void {
    const needed = needsHealthCheck(old);
    const needs = needsHealthCheck(spec);
    if (!needed && needs) {
      this.allocHealthCheckNodePort(spec, txn);
    } else if (needed && !needs) {
      const port = old.healthCheckNodePort;
      if (port) txn.releaseOnCommit(() => this.ports.release(port));
    } else if (needed && needs && (old.healthCheckNodePort ?? 0) !== (spec.healthCheckNodePort ?? 0)) {
      throw invalidError(SERVICE_KIND, name, [{
        reason: "FieldValueInvalid", field: "spec.healthCheckNodePort",
        message: `Invalid value: ${spec.healthCheckNodePort ?? 0}: cannot change healthCheckNodePort on loadBalancer service with externalTraffic=Local during update`,
      }]);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Pure helpers.

function specOf(obj: KubeObject): Spec {
  if (!isRecord(obj.spec)) obj.spec = {};
  return obj.spec as Spec;
}

function otherFamily(family: IpFamily | undefined): IpFamily {
  return family === "IPv6" ? "IPv4" : "IPv6";
}

function needsNodePort(spec: Spec): boolean {
  return spec.type === "NodePort" || spec.type === "LoadBalancer";
}

function shouldAllocateNodePorts(spec: Spec): boolean {
  if (spec.type === "NodePort") return true;
  if (spec.type === "LoadBalancer") return spec.allocateLoadBalancerNodePorts !== false;
  return false;
}

function needsHealthCheck(spec: Spec): boolean {
  return spec.type === "LoadBalancer" && spec.externalTrafficPolicy === "Local";
}

function allocationsOf(spec: Spec): { ips: string[]; ports: number[] } {
  const ips = (spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : [])).filter((ip) => ip !== "None" && ip !== "");
  const ports = [...nodePortsOf(spec), ...(spec.healthCheckNodePort ? [spec.healthCheckNodePort] : [])];
  return { ips, ports };
}

function nodePortsOf(spec: Spec): number[] {
  const ports = new Set<number>();
  for (const port of spec.ports ?? []) if (port.nodePort) ports.add(port.nodePort);
  return [...ports];
}

function isMatchingPreferDualStack(spec: Spec, old: Spec): boolean {
  return old.ipFamilyPolicy === "PreferDualStack" && spec.ipFamilyPolicy === "PreferDualStack"
    && deepEqual(old.clusterIPs, spec.clusterIPs) && deepEqual(old.ipFamilies, spec.ipFamilies);
}

/**
 * storage.go normalizeClusterIPs on update: an old client that changed only clusterIP gets clusterIPs to match (so
 * the immutability check names clusterIPs[0]), one that cleared clusterIP with clusterIPs untouched clears both.
 */
function normalizeClusterIPs(spec: Spec, old: Spec): void {
  if ((old.clusterIPs ?? []).length > 0 && (spec.clusterIPs ?? []).length === 0 && old.clusterIP === spec.clusterIP) {
    spec.clusterIPs = [...(old.clusterIPs ?? [])];
  }
  if ((old.clusterIP ?? "") !== (spec.clusterIP ?? "")) {
    if (old.clusterIP && !spec.clusterIP) {
      if (deepEqual(old.clusterIPs, spec.clusterIPs)) delete spec.clusterIPs;
    } else if (deepEqual(old.clusterIPs, spec.clusterIPs) && spec.clusterIP) {
      spec.clusterIPs = [spec.clusterIP];
    }
  }
}

/** On create a client that wrote only one of clusterIP and clusterIPs gets the other filled in. */
function syncClusterIP(spec: Spec): void {
  const ips = spec.clusterIPs ?? [];
  if (spec.clusterIP && ips.length === 0) spec.clusterIPs = [spec.clusterIP];
  else if (!spec.clusterIP && ips.length > 0) spec.clusterIP = ips[0];
  if (spec.clusterIP === "") delete spec.clusterIP;
  if (spec.clusterIPs?.length === 0) delete spec.clusterIPs;
}

/** SetDefaults_Service (pkg/apis/core/v1/defaults.go), as run on every decode of a v1 Service. */
export function applyServiceDefaults(svc: KubeObject): void {
  const spec = specOf(svc);
  if (!spec.sessionAffinity) spec.sessionAffinity = "None";
  if (spec.sessionAffinity === "None") delete spec.sessionAffinityConfig;
  if (spec.sessionAffinity === "ClientIP") {
    const config = isRecord(spec.sessionAffinityConfig) ? spec.sessionAffinityConfig : {};
    const clientIP = isRecord(config.clientIP) ? config.clientIP : {};
    if (clientIP.timeoutSeconds === undefined || clientIP.timeoutSeconds === null) {
      spec.sessionAffinityConfig = { clientIP: { timeoutSeconds: 10800 } };
    }
  }
  if (!spec.type) spec.type = "ClusterIP";
  for (const port of spec.ports ?? []) {
    if (!isRecord(port)) continue;
    if (!port.protocol) port.protocol = "TCP";
    if (port.targetPort === undefined || port.targetPort === 0 || port.targetPort === "") port.targetPort = port.port;
  }
  const externallyAccessible = spec.type === "NodePort" || spec.type === "LoadBalancer"
    || (spec.type === "ClusterIP" && Array.isArray(spec.externalIPs) && spec.externalIPs.length > 0);
  if (externallyAccessible && !spec.externalTrafficPolicy) spec.externalTrafficPolicy = "Cluster";
  if ((spec.internalTrafficPolicy === undefined || spec.internalTrafficPolicy === null)
    && (spec.type === "NodePort" || spec.type === "LoadBalancer" || spec.type === "ClusterIP")) {
    spec.internalTrafficPolicy = "Cluster";
  }
  if (spec.type === "LoadBalancer" && (spec.allocateLoadBalancerNodePorts === undefined || spec.allocateLoadBalancerNodePorts === null)) {
    spec.allocateLoadBalancerNodePorts = true;
  }
  if (spec.type === "LoadBalancer" && isRecord(svc.status) && isRecord(svc.status.loadBalancer)) {
    for (const ingress of Array.isArray(svc.status.loadBalancer.ingress) ? svc.status.loadBalancer.ingress : []) {
      if (isRecord(ingress) && ingress.ip && (ingress.ipMode === undefined || ingress.ipMode === null)) ingress.ipMode = "VIP";
    }
  }
}

/** registry/core/service/storage patchAllocatedValues: values a PUT left out are taken from the stored object. */
function patchAllocatedValues(spec: Spec, old: Spec): void {
  if (old.type !== "ExternalName" && spec.type !== "ExternalName") {
    if (!spec.clusterIP && old.clusterIP) spec.clusterIP = old.clusterIP;
    if ((spec.clusterIPs ?? []).length === 0 && (old.clusterIPs ?? []).length > 0) spec.clusterIPs = [...(old.clusterIPs ?? [])];
  }
  if (needsNodePort(old) && needsNodePort(spec)) {
    const oldUsed = new Set(nodePortsOf(old));
    const used = new Set(nodePortsOf(spec).filter((p) => oldUsed.has(p)));
    const byName = new Map<string, number>();
    for (const port of old.ports ?? []) byName.set(port.name ?? "", port.nodePort ?? 0);
    for (const port of spec.ports ?? []) {
      if (port.nodePort) continue;
      const previous = byName.get(port.name ?? "") ?? 0;
      if (previous && !used.has(previous)) port.nodePort = previous;
    }
  }
  if (needsHealthCheck(old) && needsHealthCheck(spec) && !spec.healthCheckNodePort) {
    spec.healthCheckNodePort = old.healthCheckNodePort;
  }
}

/** strategy.go dropTypeDependentFields: wipe what the new type doesn't use, unless the client changed it. */
function dropTypeDependentFields(svc: KubeObject, old: Spec): void {
  const spec = specOf(svc);
  if (old.type !== "ExternalName" && spec.type === "ExternalName") {
    if (deepEqual(old.clusterIPs, spec.clusterIPs)) {
      delete spec.clusterIP;
      delete spec.clusterIPs;
    }
    if (deepEqual(old.ipFamilies, spec.ipFamilies)) delete spec.ipFamilies;
    if (old.ipFamilyPolicy === spec.ipFamilyPolicy) delete spec.ipFamilyPolicy;
  }
  if (needsNodePort(old) && !needsNodePort(spec) && deepEqual(nodePortsOf(old), nodePortsOf(spec))) {
    for (const port of spec.ports ?? []) delete port.nodePort;
  }
  if (needsHealthCheck(old) && !needsHealthCheck(spec) && old.healthCheckNodePort === spec.healthCheckNodePort) {
    delete spec.healthCheckNodePort;
  }
  if (spec.type !== "LoadBalancer") delete spec.allocateLoadBalancerNodePorts;
  const externallyAccessible = spec.type === "NodePort" || spec.type === "LoadBalancer"
    || (spec.type === "ClusterIP" && Array.isArray(spec.externalIPs) && spec.externalIPs.length > 0);
  if (!externallyAccessible && old.externalTrafficPolicy === spec.externalTrafficPolicy) delete spec.externalTrafficPolicy;
  if (spec.type !== "LoadBalancer") {
    if (isRecord(svc.status)) svc.status.loadBalancer = {};
    if (old.loadBalancerClass === spec.loadBalancerClass) delete spec.loadBalancerClass;
  }
  if (spec.type === "ExternalName" && old.internalTrafficPolicy === spec.internalTrafficPolicy) delete spec.internalTrafficPolicy;
}

/** ValidateServiceUpdate: ClusterIPs and ipFamilies may grow or shrink at the end but never change; LB class fixed. */
function validateServiceUpdate(spec: Spec, old: Spec, errs: FieldErrors): void {
  if (spec.type !== "ExternalName" && old.type !== "ExternalName") {
    const headless = (s: Spec) => (s.clusterIPs ?? [])[0] === "None";
    if (!(headless(spec) && headless(old))) {
      const oldIps = old.clusterIPs ?? [];
      const ips = spec.clusterIPs ?? [];
      if (oldIps.length === ips.length) {
        oldIps.forEach((ip, i) => {
          if (ip !== ips[i]) errs.invalid(`spec.clusterIPs[${i}]`, ips, "may not change once set");
        });
      } else if (oldIps.length > ips.length) {
        if (ips.length === 0) errs.invalid("spec.clusterIPs[0]", ips, "primary clusterIP can not be unset");
        else if (ips[0] !== oldIps[0]) errs.invalid("spec.clusterIPs[0]", ips, "may not change once set");
        if (ips.length === 1 && spec.ipFamilyPolicy !== "SingleStack") {
          errs.invalid("spec.clusterIPs[0]", ips, "`ipFamilyPolicy` must be set to 'SingleStack' when releasing the secondary clusterIP");
        }
      } else if (oldIps.length > 0 && ips[0] !== oldIps[0]) {
        errs.invalid("spec.clusterIPs[0]", ips, "may not change once set");
      }
      const oldFamilies = old.ipFamilies ?? [];
      const families = spec.ipFamilies ?? [];
      if (families.length > 0) {
        const common = Math.min(oldFamilies.length, families.length);
        for (let i = 0; i < common; i++) {
          if (oldFamilies[i] !== families[i]) errs.invalid(`spec.ipFamilies[${i}]`, families, "may not change once set");
        }
      }
    }
  }
  if (old.type === "LoadBalancer" && spec.type === "LoadBalancer" && (old.loadBalancerClass ?? null) !== (spec.loadBalancerClass ?? null)) {
    errs.invalid("spec.loadBalancerClass", spec.loadBalancerClass ?? null, "field is immutable");
  }
}

/** ValidateLoadBalancerStatus (1.32, LoadBalancerIPMode on). */
function validateLoadBalancerStatus(lb: Record<string, unknown>, errs: FieldErrors): void {
  const ingress = Array.isArray(lb.ingress) ? lb.ingress : [];
  ingress.forEach((entry, i) => {
    const path = `status.loadBalancer.ingress[${i}]`;
    const e = isRecord(entry) ? entry : {};
    const ip = typeof e.ip === "string" ? e.ip : "";
    if (ip !== "") {
      try {
        parseIp(ip);
      } catch {
        errs.invalid(`${path}.ip`, ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)");
      }
    }
    const ipMode = e.ipMode;
    if (ip !== "" && (ipMode === undefined || ipMode === null)) errs.required(`${path}.ipMode`, "must be specified when `ip` is set");
    else if (ipMode !== undefined && ipMode !== null && ip === "") errs.forbidden(`${path}.ipMode`, "may not be specified when `ip` is not set");
    else if (ipMode !== undefined && ipMode !== null && ipMode !== "VIP" && ipMode !== "Proxy") errs.notSupported(`${path}.ipMode`, ipMode, ["VIP", "Proxy"]);
    const hostname = typeof e.hostname === "string" ? e.hostname : "";
    if (hostname !== "") {
      let isIp = true;
      try {
        parseIp(hostname);
      } catch {
        isIp = false;
      }
      if (isIp) errs.invalid(`${path}.hostname`, hostname, "must be a DNS name, not an IP address");
      else if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(hostname) || hostname.length > 253) {
        errs.invalid(`${path}.hostname`, hostname, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character");
      }
    }
    (Array.isArray(e.ports) ? e.ports : []).forEach((port, j) => {
      const p = isRecord(port) ? port : {};
      if (!Number.isInteger(p.port) || (p.port as number) < 1 || (p.port as number) > 65535) {
        errs.invalid(`${path}.ports[${j}].port`, p.port ?? 0, "must be between 1 and 65535, inclusive");
      }
      if (p.protocol === undefined || p.protocol === "") errs.required(`${path}.ports[${j}].protocol`);
      else if (!["SCTP", "TCP", "UDP"].includes(p.protocol as string)) errs.notSupported(`${path}.ports[${j}].protocol`, p.protocol, ["SCTP", "TCP", "UDP"]);
    });
  });
}

function bytesToBigInt(bytes: number[]): bigint {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value;
}
