// Shared setup for the kube glue's integration tests: a fresh sandbox API server per test over real HTTP, and a
// KubeClient pointed at it, so every test sees exactly what a controller would on the wire.
import { startApiServer, type ApiServerHandle, type ApiServerOptions } from "../../../src/sandbox/apiserver/index.js";
import { KubeClient, type ApiRequestRecorder, type KubeClientOptions } from "../../../src/lib/kube/client.js";

export interface Fixture {
  api: ApiServerHandle;
  client: KubeClient;
  /** Every request the client made, as "verb resource code". */
  requests: string[];
  close(): Promise<void>;
}

export async function startFixture(options: ApiServerOptions = {}, clientOptions: Partial<KubeClientOptions> = {}): Promise<Fixture> {
  const api = await startApiServer({ port: 0, ...options });
  const requests: string[] = [];
  const recorder: ApiRequestRecorder = { apiRequest: (verb, resource, code) => requests.push(`${verb} ${resource} ${code}`) };
  const client = new KubeClient({ server: api.url, authHeaders: () => ({ Authorization: `Bearer ${api.token}` }), metrics: recorder, ...clientOptions });
  return {
    api,
    client,
    requests,
    close: async () => {
      client.close();
      await api.close();
    },
  };
}

/** Polls `check` until it returns true; fails with `what` after `ms`. */
export async function waitFor(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const configMap = (name: string, data: Record<string, string> = {}, namespace = "default") =>
  ({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace }, data });
