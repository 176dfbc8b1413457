// "${XRTC_NAME}" in a routes.yml value is replaced by that environment variable, so that one file serves
// every node of a fleet, each with its own address (on Kubernetes the downward API sets the variable).
// Only this one syntax, and only names starting with XRTC_: a routes.yml cannot pull an unrelated secret
// out of the environment into --check-config or /status, and any other "${" is an error rather than text
// silently kept. Keys and comments are never expanded.
import { type Document, isPair, isScalar, isSeq, type Node, type Pair, type Scalar, visit } from "yaml";
import type { Reader } from "./schema.ts";

/** Reads one environment variable; undefined when it is not set. */
export type EnvLookup = (name: string) => string | undefined;

export const processEnv: EnvLookup = (name) => Deno.env.get(name);

const REFERENCE = /\$\{(XRTC_[A-Z0-9_]+)\}/g;

/** Expands every reference in the document's scalar values in place; problems go to the reader. */
export function expandEnv(doc: Document, r: Reader, env: EnvLookup): void {
  visit(doc, {
    Scalar(key, node, ancestors) {
      if (key === "key" || typeof node.value !== "string" || !node.value.includes("${")) return;
      const path = yamlPath(ancestors, node);
      const text = node.value;
      if (text.replace(REFERENCE, "").includes("${")) {
        r.error(path, node, 'only "${XRTC_NAME}" references (A-Z, 0-9, _) to the environment are expanded');
        return;
      }
      let ok = true;
      const expanded = text.replace(REFERENCE, (ref, name: string) => {
        let value: string | undefined;
        try {
          value = env(name);
        } catch (e) {
          r.error(path, node, `cannot read ${name}: ${e instanceof Error ? e.message : String(e)}`);
          ok = false;
          return ref;
        }
        if (value) return value;
        r.error(path, node, `environment variable ${name} is not set (or empty)`);
        ok = false;
        return ref;
      });
      if (ok) node.value = expanded;
    },
  });
}

/** "services.ice_udp.net.candidate_ips[0]" for a scalar, from the visitor's ancestors. */
function yamlPath(ancestors: readonly (Document | Node | Pair)[], node: Scalar): string {
  const parts: string[] = [];
  const chain = [...ancestors, node];
  chain.forEach((a, i) => {
    const child = chain[i + 1];
    if (isPair(a) && isScalar(a.key)) parts.push(String(a.key.value));
    else if (isSeq(a) && child !== undefined) parts.push(`[${a.items.indexOf(child)}]`);
  });
  return parts.join(".").replaceAll(".[", "[") || "(root)";
}
