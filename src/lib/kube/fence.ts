// A KubeClient bound to one leadership term (docs/design/0011-fenced-leadership-steps-down-in-process.md): every
// request made through it carries the term's AbortSignal, so the moment the elector fences the term (Lease lost,
// or not renewed within the renew deadline) the requests in flight are cut off (their sockets destroyed, which a
// kube-apiserver sees as a cancelled request context) and no new one is sent. Reconcile code takes a KubeClient
// and never sees the term: the controller hands each term's reconciles and EventRecorder a view made here.
// Reads are fenced too: nothing of an old term should keep the workers from draining.
import { setMaxListeners } from "node:events";
import { KubeClient, KubeError, type DeleteOptions, type ListOptions, type RequestOptionsBase, type WriteOptions } from "./client.js";

/** How often writes were stopped by fencing: refused before sending, or aborted while in flight. */
export interface FenceRecorder {
  fencedWrite(verb: string, stage: "refused" | "aborted"): void;
}

/** Thrown instead of sending, or in place of the abort of a request in flight, once the term is fenced. */
export class FencedError extends KubeError {
  constructor(method: string, stage: "refused" | "aborted") {
    super(0, "Fenced", stage === "refused"
      ? `${method}: not sent: this replica no longer holds the leader Lease`
      : `${method}: aborted in flight: this replica lost the leader Lease`);
  }
}

export const isFenced = (e: unknown): boolean => e instanceof KubeError && e.reason === "Fenced";

type Method = keyof KubeClient;

/**
 * Methods that take request options, with the index of that argument, and for writes the verb as kube-apiserver
 * counts it (for the fenced-writes metric); reads have none.
 */
const FENCED: Partial<Record<Method, { opts: number; verb?: string }>> = {
  get: { opts: 2 },
  tryGet: { opts: 2 },
  list: { opts: 1 },
  listAll: { opts: 1 },
  watch: { opts: 1 },
  create: { opts: 2, verb: "create" },
  replace: { opts: 2, verb: "update" },
  replaceStatus: { opts: 2, verb: "update" },
  delete: { opts: 2, verb: "delete" },
  patch: { opts: 4, verb: "patch" },
  patchStatus: { opts: 4, verb: "patch" },
  apply: { opts: 2, verb: "apply" },
  applyStatus: { opts: 2, verb: "apply" },
};

/**
 * `client` as one leadership term sees it. Once `term` aborts, every call rejects with a FencedError: at once if
 * it had not been sent, or as soon as the abort tears down the request in flight. Closing it closes nothing (the
 * underlying client is shared by the informers and the elector).
 */
export function fencedClient(client: KubeClient, term: AbortSignal, recorder?: FenceRecorder): KubeClient {
  // Every request of the term listens on this one signal while in flight (workers, and Events nobody awaits), so
  // Node's default warning at 11 listeners would cry wolf; sendOnce removes its listener however a request ends.
  setMaxListeners(0, term);
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop === "close") return () => undefined;
      const v = Reflect.get(target, prop, receiver) as unknown;
      const spec = typeof prop === "string" ? FENCED[prop as Method] : undefined;
      if (typeof v !== "function") return v;
      const fn = v as (...a: unknown[]) => unknown;
      if (!spec) return fn.bind(target);
      const method = prop as Method;
      const withTerm = (args: unknown[]): unknown[] => {
        const out = [...args];
        while (out.length < spec.opts) out.push(undefined);
        const opts = (out[spec.opts] ?? {}) as RequestOptionsBase & (WriteOptions | DeleteOptions | ListOptions);
        out[spec.opts] = { ...opts, signal: opts.signal ? AbortSignal.any([opts.signal, term]) : term };
        return out;
      };
      if (method === "watch") {
        // A watch of an ended term ends, as a watch whose own signal aborts does.
        return async function* (...args: unknown[]): AsyncGenerator<unknown, void, undefined> {
          if (term.aborted) return;
          try {
            yield* fn.apply(target, withTerm(args)) as AsyncGenerator<unknown, void, undefined>;
          } catch (e) {
            if (term.aborted && e instanceof KubeError && e.reason === "Aborted") return;
            throw e;
          }
        };
      }
      return async (...args: unknown[]) => {
        if (term.aborted) {
          if (spec.verb) recorder?.fencedWrite(spec.verb, "refused");
          throw new FencedError(method, "refused");
        }
        try {
          return await (fn.apply(target, withTerm(args)) as Promise<unknown>);
        } catch (e) {
          if (term.aborted && e instanceof KubeError && e.reason === "Aborted") {
            if (spec.verb) recorder?.fencedWrite(spec.verb, "aborted");
            throw new FencedError(method, "aborted");
          }
          throw e;
        }
      };
    },
  });
}
