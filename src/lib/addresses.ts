// IP address and CIDR parsing for everything berth reads from users and from the Kubernetes API, on ipaddr.js.
//
// Strictness follows the kube-apiserver's "strict" IP/CIDR validation (KEP-4858, feature gate
// StrictIPCIDRValidation), because the loose forms are ambiguous between the programs that read them:
// - IPv4 octets with leading zeros ("010.0.0.1") are rejected: Go reads them as decimal, libc as octal
//   (CVE-2021-29923). ipaddr.js itself would also accept hex and octal forms, which we never want.
// - IPv4-mapped IPv6 addresses ("::ffff:10.0.0.1") are rejected: they smuggle an IPv4 address into IPv6 rules,
//   where it can never match.
// - IPv6 zone identifiers ("fe80::1%eth0") are rejected: no Kubernetes address field carries one.
// One deliberate difference: a CIDR with host bits set ("10.1.2.3/8") is ACCEPTED and normalised to its network
// ("10.0.0.0/8"). The kube-apiserver accepts such values in spec.loadBalancerSourceRanges by default (with a warning
// since 1.27; rejected only when StrictIPCIDRValidation is on), and kube-proxy enforces them as the masked network
// (Go's net.ParseCIDR), so refusing them would make a Service that works with kube-proxy crash our pod.
// A bare address in a range list means that single host (/32 or /128), as `iptables -s` reads it in klipper-lb.
import ipaddr from "ipaddr.js";

import type { Family } from "./rules/model.js";

/** Bad address text; the message says why, and the caller adds where the text came from. */
export class AddressError extends Error {
  override name = "AddressError";
}

export interface IpAddress {
  family: Family;
  /** Canonical text: dotted decimal for IPv4, RFC 5952 for IPv6 ("2001:db8::1"). */
  text: string;
  /** Network-order bytes (4 or 16), for sorting. */
  bytes: number[];
}

export interface Cidr {
  family: Family;
  /** Canonical network address (host bits cleared). */
  network: string;
  prefixLength: number;
  /** `network/prefixLength`, canonical. */
  text: string;
  bytes: number[];
}

const IPV4_DECIMAL = /^(0|[1-9]\d{0,2})(\.(0|[1-9]\d{0,2})){3}$/;
const PREFIX_LENGTH = /^(0|[1-9]\d{0,2})$/;

/** Parses one IP address strictly (see the file comment); throws AddressError with the reason. */
export function parseIp(input: string): IpAddress {
  const text = input.trim();
  if (text.includes(":")) {
    if (text.includes("%")) throw new AddressError(`"${input}" carries an IPv6 zone identifier, which is not allowed`);
    if (!ipaddr.IPv6.isValid(text)) throw new AddressError(`"${input}" is not a valid IPv6 address`);
    const ip = ipaddr.IPv6.parse(text);
    if (ip.isIPv4MappedAddress()) {
      throw new AddressError(`"${input}" is an IPv4-mapped IPv6 address; write the IPv4 address ${ip.toIPv4Address().toString()} instead`);
    }
    return { family: "ipv6", text: ip.toRFC5952String(), bytes: ip.toByteArray() };
  }
  if (!IPV4_DECIMAL.test(text) || !ipaddr.IPv4.isValidFourPartDecimal(text)) {
    if (/(^|\.)0\d/.test(text) && /^[\d.]+$/.test(text)) {
      throw new AddressError(`"${input}" has an octet with a leading zero, which is ambiguous (octal or decimal?)`);
    }
    throw new AddressError(`"${input}" is not a valid IP address`);
  }
  const ip = ipaddr.IPv4.parse(text);
  return { family: "ipv4", text: ip.toString(), bytes: ip.toByteArray() };
}

/**
 * Parses one CIDR (or a bare address, meaning a single host) strictly; host bits are cleared (see the file
 * comment for why that is accepted). Throws AddressError with the reason.
 */
export function parseCidr(input: string): Cidr {
  const text = input.trim();
  const slash = text.indexOf("/");
  const addressText = slash < 0 ? text : text.slice(0, slash);
  let address: IpAddress;
  try {
    address = parseIp(addressText);
  } catch (error) {
    if (error instanceof AddressError) throw new AddressError(`"${input}" is not a valid CIDR: ${error.message}`);
    throw error;
  }
  const maxLength = address.family === "ipv4" ? 32 : 128;
  let prefixLength = maxLength;
  if (slash >= 0) {
    const lengthText = text.slice(slash + 1);
    if (!PREFIX_LENGTH.test(lengthText) || Number(lengthText) > maxLength) {
      throw new AddressError(`"${input}" is not a valid CIDR: prefix length "${lengthText}" is not a number from 0 to ${maxLength}`);
    }
    prefixLength = Number(lengthText);
  }
  const bytes = maskBytes(address.bytes, prefixLength);
  const network = ipaddr.fromByteArray(bytes);
  const networkText = network.kind() === "ipv6" ? (network as ipaddr.IPv6).toRFC5952String() : network.toString();
  return { family: address.family, network: networkText, prefixLength, text: `${networkText}/${prefixLength}`, bytes };
}

/** The family of an address already known to be valid (cheap; no validation). */
export function familyOf(canonical: string): Family {
  return canonical.includes(":") ? "ipv6" : "ipv4";
}

/** Orders addresses (or networks) by family (IPv4 first), then numerically; ties broken by prefix length. */
export function compareAddresses(a: { family: Family; bytes: number[]; prefixLength?: number },
  b: { family: Family; bytes: number[]; prefixLength?: number }): number {
  if (a.family !== b.family) return a.family === "ipv4" ? -1 : 1;
  for (let i = 0; i < a.bytes.length; i++) {
    const diff = (a.bytes[i] ?? 0) - (b.bytes[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return (a.prefixLength ?? 0) - (b.prefixLength ?? 0);
}

function maskBytes(bytes: number[], prefixLength: number): number[] {
  return bytes.map((byte, index) => {
    const bitsKept = Math.max(0, Math.min(8, prefixLength - index * 8));
    return byte & ((0xff << (8 - bitsKept)) & 0xff);
  });
}
