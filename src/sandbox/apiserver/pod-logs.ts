// `GET pods/<name>/log` (`kubectl logs`, with -c, -f, --previous, --tail): kube-apiserver asks the pod's kubelet,
// which reads the container runtime's log file; the sandbox API server reads the files the sandbox kubelet writes
// (`<dir>/<namespace>_<pod>_<container>.log`, the previous instance's as `.log.previous`) from the directory it is
// given. The errors are kube-apiserver's (pkg/registry/core/pod/strategy.go LogLocation, and the kubelet's
// validateContainerLogStatus), so kubectl prints what it prints against a cluster.
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import type { IncomingMessage, ServerResponse } from "node:http";
import { ApiError, type KubeObject } from "./types.js";

export interface PodLogOptions {
  container?: string;
  follow: boolean;
  previous: boolean;
  tailLines?: number;
}

interface ContainerStatus {
  name?: string;
  state?: { waiting?: { reason?: string }; running?: unknown; terminated?: unknown };
  lastState?: { terminated?: unknown };
}

const badRequest = (message: string): ApiError => new ApiError(400, "BadRequest", message);

/** The container whose log is asked for, or the error kube answers (LogLocation: a name is needed when there are several). */
export function logContainer(pod: KubeObject, asked: string | undefined): string {
  const spec = (pod.spec ?? {}) as { containers?: { name?: string }[]; initContainers?: { name?: string }[] };
  const names = (spec.containers ?? []).map((c) => c.name ?? "");
  const podName = pod.metadata.name ?? "";
  if (asked === undefined || asked === "") {
    const preferred = pod.metadata.annotations?.["kubectl.kubernetes.io/default-container"];
    if (preferred && names.includes(preferred)) return preferred;
    if (names.length === 1) return names[0] as string;
    throw badRequest(`a container name must be specified for pod ${podName}, choose one of: [${names.join(" ")}]`);
  }
  const inits = (spec.initContainers ?? []).map((c) => c.name ?? "");
  if (!names.includes(asked) && !inits.includes(asked)) {
    throw badRequest(`container ${asked} is not valid for pod ${podName}`);
  }
  return asked;
}

/** The kubelet's validateContainerLogStatus: which file to read, or why there is none. */
export function logFile(dir: string, pod: KubeObject, container: string, previous: boolean): string {
  const podName = pod.metadata.name ?? "";
  const statuses = ((pod.status ?? {}) as { containerStatuses?: ContainerStatus[] }).containerStatuses ?? [];
  const status = statuses.find((s) => s.name === container);
  const file = join(dir, `${pod.metadata.namespace ?? ""}_${podName}_${container}.log`);
  if (previous) {
    if (!status?.lastState?.terminated) throw badRequest(`previous terminated container "${container}" in pod "${podName}" not found`);
    return `${file}.previous`;
  }
  if (!status || (status.state?.waiting && !status.lastState?.terminated)) {
    const reason = status?.state?.waiting?.reason ?? "ContainerCreating";
    throw badRequest(`container "${container}" in pod "${podName}" is waiting to start: ${reason}`);
  }
  return file;
}

/** The last `n` lines of `text` (a final newline does not count as an empty last line). */
export function tail(text: string, n: number | undefined): string {
  if (n === undefined || n < 0) return text;
  if (n === 0) return "";
  const lines = text.split("\n");
  const trailing = lines[lines.length - 1] === "" ? lines.pop() : undefined;
  return lines.slice(-n).join("\n") + (trailing !== undefined ? "\n" : "");
}

/**
 * Streams the log: what is there (its last tailLines), then with `follow` whatever is appended, until the client
 * goes away or `alive()` says the pod or container instance is gone.
 */
export async function streamLog(req: IncomingMessage, res: ServerResponse, file: string, opts: PodLogOptions, alive: () => boolean): Promise<void> {
  let text: string;
  try {
    const handle = await open(file, "r");
    try {
      text = (await handle.readFile()).toString("utf8");
    } finally {
      await handle.close();
    }
  } catch {
    text = "";
  }
  res.writeHead(200, { "Content-Type": "text/plain", ...(opts.follow ? { "Transfer-Encoding": "chunked" } : {}) });
  res.write(tail(text, opts.tailLines));
  if (!opts.follow) {
    res.end();
    return;
  }
  let offset = Buffer.byteLength(text);
  const inode = await stat(file).then((s) => s.ino, () => undefined);
  let closed = false;
  req.once("close", () => (closed = true));
  res.once("close", () => (closed = true));
  while (!closed) {
    await new Promise((r) => setTimeout(r, 200));
    if (!alive()) break;
    let size: number;
    try {
      const now = await stat(file);
      // Another file under the name: the container restarted (kubectl logs -f ends there on a cluster too).
      if (inode !== undefined && now.ino !== inode) break;
      size = now.size;
    } catch {
      break;
    }
    if (size < offset) break;
    if (size === offset) continue;
    const handle = await open(file, "r");
    try {
      const chunk = Buffer.alloc(size - offset);
      await handle.read(chunk, 0, chunk.length, offset);
      offset = size;
      if (!closed) res.write(chunk);
    } finally {
      await handle.close();
    }
  }
  if (!res.writableEnded) res.end();
}
