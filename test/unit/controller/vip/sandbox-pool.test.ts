// The sandbox's default AddressPool (src/sandbox/cluster/address-pool.ts): valid, inside the LAN prefixes of the
// layout, and clear of every address a sandbox machine uses, for both single- and dual-stack layouts.
import { strict as assert } from "node:assert";

import { parseCidr } from "../../../../src/lib/addresses.js";
import { ipToBigInt, parsePool, parseRange } from "../../../../src/controller/vip/pools.js";
import { sandboxAddressPool } from "../../../../src/sandbox/cluster/address-pool.js";
import { planLayout } from "../../../../src/sandbox/cluster/layout.js";

describe("sandbox: the default AddressPool", () => {
  for (const dualStack of [false, true]) {
    it(`is valid, on the LAN and clear of nodes and the client (${dualStack ? "dual-stack" : "IPv4"}, 20 nodes)`, () => {
      const layout = planLayout({ prefix: "bsbpool", nodes: 20, dualStack });
      const pool = sandboxAddressPool(layout);
      const parsed = parsePool(pool);
      assert.ok(parsed.ok, parsed.ok ? "" : parsed.message);
      assert.deepEqual([...new Set(parsed.pool.ranges.map((r) => r.family))], dualStack ? ["ipv4", "ipv6"] : ["ipv4"]);
      const used = [...layout.nodes.flatMap((n) => n.lanIps), ...layout.client.lanIps].map((ip) => ipToBigInt(ip));
      for (const range of parsed.pool.ranges) {
        const lan = parseRange(layout.lanCidrs.find((c) => parseCidr(c).family === range.family) as string);
        assert.ok(lan.first < range.first && range.last < lan.last, `${range.text} inside ${lan.text}, not its first or last address`);
        for (const u of used) assert.ok(u.family !== range.family || u.value < range.first || u.value > range.last, `${range.text} holds a machine's address`);
      }
    });
  }
});
