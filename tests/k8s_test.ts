// deploy/k8s/ offline: every kustomization rendered by `kubectl kustomize`, every object (rendered, and
// every plain manifest) validated against the Kubernetes schemas (kubernetes-models; the ServiceMonitor
// against prometheus-operator's), and the properties the deployment depends on, read from the objects and
// from routes.yml as xRTC's own loader reads it. Each check is also shown to fail on a broken copy.
import assert from "node:assert/strict";
import { parse, parseAllDocuments } from "yaml";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { ConfigMap, type IConfigMap } from "kubernetes-models/v1/ConfigMap";
import { type IService, Service } from "kubernetes-models/v1/Service";
import { DaemonSet, type IDaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import {
  type IPodDisruptionBudget,
  PodDisruptionBudget,
} from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import { ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import {
  type IServiceMonitor,
  ServiceMonitor,
} from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IProbe } from "kubernetes-models/v1/Probe";
import type { ILabelSelector } from "@kubernetes-models/apimachinery/apis/meta/v1/LabelSelector";
import { loadConfigText } from "../src/config/load.ts";
import type { Config } from "../src/config/types.ts";

const K8S = new URL("../deploy/k8s/", import.meta.url).pathname;

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
}

/** The schema of every kind deploy/k8s/ uses; another kind fails the test until it is added here. */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "v1/Namespace": Namespace,
  "v1/ServiceAccount": ServiceAccount,
  "v1/ConfigMap": ConfigMap,
  "v1/Service": Service,
  "apps/v1/DaemonSet": DaemonSet,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "rbac.authorization.k8s.io/v1/ClusterRole": ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ClusterRoleBinding,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
};

function validate(o: K8sObject): void {
  const Model = MODELS[`${o.apiVersion}/${o.kind}`];
  assert.ok(Model, `no schema for ${o.apiVersion} ${o.kind}`);
  new Model(structuredClone(o) as never).validate();
}

function parseObjects(text: string): K8sObject[] {
  return parseAllDocuments(text).map((d) => d.toJS() as K8sObject).filter((o) => o !== null);
}

async function render(dir: string): Promise<K8sObject[]> {
  const out = await new Deno.Command("kubectl", { args: ["kustomize", dir], stderr: "piped" }).output();
  assert.ok(out.success, `kubectl kustomize ${dir}: ${new TextDecoder().decode(out.stderr)}`);
  return parseObjects(new TextDecoder().decode(out.stdout));
}

/** Every directory under deploy/k8s/ with a kustomization, relative to it. */
function kustomizations(dir = K8S): string[] {
  const found: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (!e.isDirectory) continue;
    const sub = `${dir}${e.name}/`;
    try {
      Deno.statSync(`${sub}kustomization.yaml`);
      found.push(sub.slice(K8S.length, -1));
    } catch { /* not one */ }
    found.push(...kustomizations(sub));
  }
  return found.sort();
}

interface Kustomization {
  kind?: string;
  resources?: string[];
}

const DIRS = kustomizations();
const OVERLAYS = DIRS.filter((d) => d.startsWith("overlays/"));

/** Fake values for the downward API's fields, and for what the external-ip init container writes. */
const HOST_IP = "198.18.0.10";
const FIELDS: Record<string, string> = { "status.hostIP": HOST_IP, "spec.nodeName": "node-a" };
const EXTERNAL_IP = "198.18.0.200";

/** The environment the xrtc container sees: its env entries, and what its shell wrapper exports. */
function containerEnv(c: IContainer): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    const value = e.value ?? FIELDS[e.valueFrom?.fieldRef?.fieldPath ?? ""];
    if (value !== undefined) env[e.name] = value;
  }
  for (const m of (c.command ?? []).join(" ").matchAll(/\bexport (XRTC_\w+)/g)) env[m[1]] = EXTERNAL_IP;
  return env;
}

interface Deployment {
  ds: IDaemonSet;
  xrtc: IContainer;
  services: IService[];
  pdb: IPodDisruptionBudget;
  monitor: IServiceMonitor;
  routesText: string;
  config: Config;
  warnings: string[];
}

function only<T>(objects: K8sObject[], kind: string): T[] {
  return objects.filter((o) => o.kind === kind) as unknown as T[];
}

function matches(selector: ILabelSelector | Record<string, string> | undefined, labels = {}): boolean {
  const want = (selector && "matchLabels" in selector ? selector.matchLabels : selector) ?? {};
  assert.ok(Object.keys(want).length > 0, "an empty selector selects everything");
  return Object.entries(want).every(([k, v]) => (labels as Record<string, string>)[k] === v);
}

/** The objects of one rendered kustomization, with routes.yml loaded as xRTC would load it on a node. */
function deployment(objects: K8sObject[]): Deployment {
  const [ds, ...moreDs] = only<IDaemonSet>(objects, "DaemonSet");
  assert.ok(ds && moreDs.length === 0, "one DaemonSet");
  const pod = ds.spec!.template.spec!;
  const xrtc = pod.containers.find((c) => c.name === "xrtc")!;
  assert.ok(xrtc, "a container xrtc");
  // routes.yml: the ConfigMap mounted where --config points.
  const args = xrtc.args ?? [];
  const file = args[args.indexOf("--config") + 1];
  assert.ok(file, "--config FILE");
  const mount = xrtc.volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`));
  const cmName = pod.volumes?.find((v) => v.name === mount?.name)?.configMap?.name;
  const cm = only<IConfigMap>(objects, "ConfigMap").find((c) => c.metadata?.name === cmName);
  const routesText = cm?.data?.[file.slice(mount!.mountPath.length + 1)];
  assert.ok(routesText, `${file} is a ConfigMap's key mounted there`);
  const [pdb] = only<IPodDisruptionBudget>(objects, "PodDisruptionBudget");
  const [monitor] = only<IServiceMonitor>(objects, "ServiceMonitor");
  assert.ok(pdb && monitor, "a PodDisruptionBudget and a ServiceMonitor");

  // The admin token file is a Secret's key mounted there; the test stands a file in for it.
  const doc = parse(routesText) as { services: Record<string, { proto: string; token_file?: string }> };
  const admin = Object.values(doc.services).find((s) => s.proto === "admin");
  assert.ok(admin?.token_file, "the admin listener has a token_file");
  const tokenMount = xrtc.volumeMounts?.find((m) => admin.token_file!.startsWith(`${m.mountPath}/`));
  const secret = pod.volumes?.find((v) => v.name === tokenMount?.name)?.secret;
  assert.ok(secret?.secretName, `${admin.token_file} is mounted from a Secret`);
  const tokenFile = Deno.makeTempFileSync();
  Deno.writeTextFileSync(tokenFile, "k8s-test-admin-token-0123456789\n");
  const env = containerEnv(xrtc);
  try {
    const { config, warnings } = loadConfigText(
      routesText.replace(admin.token_file, tokenFile),
      file,
      (name) => env[name],
    );
    const endpoint = monitor.spec.endpoints?.[0];
    assert.equal(endpoint?.authorization?.credentials?.name, secret.secretName, "Prometheus sends the token");
    assert.equal(`${tokenMount!.mountPath}/${endpoint?.authorization?.credentials?.key}`, admin.token_file);
    return {
      ds,
      xrtc,
      services: only<IService>(objects, "Service"),
      pdb,
      monitor,
      routesText,
      config,
      warnings,
    };
  } finally {
    Deno.removeSync(tokenFile);
  }
}

/** A Service or probe port (number or the container's port name) as a number. */
function portNumber(c: IContainer, port: number | string | undefined): number | undefined {
  return typeof port === "string" ? c.ports?.find((p) => p.name === port)?.containerPort : port;
}

/** Every property the deployment relies on; throws (AssertionError) on the first that does not hold. */
function checkDeployment(d: Deployment): void {
  const pod = d.ds.spec!.template.spec!;
  const podLabels = d.ds.spec!.template.metadata?.labels;
  assert.equal(pod.hostNetwork, true, "hostNetwork: the ICE ports are the node's");
  assert.equal(pod.dnsPolicy, "ClusterFirstWithHostNet", "cluster DNS on the host's network");
  assert.ok(matches(d.ds.spec!.selector, podLabels), "the DaemonSet selects its pods");
  assert.deepEqual(d.warnings, []);

  // Candidates: the node's address, as the environment gives it.
  const env = containerEnv(d.xrtc);
  const ice = d.config.listeners.filter((l) => l.proto !== "http" && l.net.enableIce);
  assert.ok(
    ice.some((l) => l.proto === "udp") && ice.some((l) => l.proto === "tcp"),
    "UDP and TCP ICE ports",
  );
  for (const l of ice) {
    assert.deepEqual(l.net.candidateIps, [env.XRTC_CANDIDATE_IP], `${l.name}: the node's address`);
    assert.ok(["", "0.0.0.0"].includes(l.net.addr.host), `${l.name} listens on every address`);
  }

  // Services: signalling only, never a media port.
  const icePorts = new Set(ice.map((l) => l.net.addr.port));
  const web = d.config.listeners.find((l) => l.proto === "http");
  for (const s of d.services) {
    assert.ok(matches(s.spec?.selector, podLabels), `Service ${s.metadata?.name} selects the pods`);
    for (const p of s.spec?.ports ?? []) {
      const target = portNumber(d.xrtc, p.targetPort ?? p.port);
      assert.ok(target !== undefined, `Service ${s.metadata?.name} port ${p.name} resolves`);
      assert.ok(
        !icePorts.has(target) && !icePorts.has(p.port),
        `Service ${s.metadata?.name} exposes no ICE port`,
      );
    }
  }
  const signalling = d.services.find((s) => s.metadata?.name === "xrtc");
  assert.deepEqual(
    signalling?.spec?.ports?.map((p) => portNumber(d.xrtc, p.targetPort)),
    [web?.net.addr.port],
    "the Service xrtc reaches the http listener",
  );

  // Probes: /livez and /readyz on the admin listener, which is bound where the kubelet probes (the pod's
  // IP, the node's on the host's network).
  const admin = d.config.admin!;
  const probe = (p: IProbe | undefined, path: string) => {
    assert.equal(p?.httpGet?.path, path);
    assert.equal(portNumber(d.xrtc, p?.httpGet?.port), admin.addr.port, `${path} on the admin port`);
    const host = p?.httpGet?.host ?? HOST_IP;
    assert.ok(
      [host, "", "0.0.0.0"].includes(admin.addr.host),
      `admin on ${admin.addr.host}, probed on ${host}`,
    );
  };
  probe(d.xrtc.livenessProbe, "/livez");
  probe(d.xrtc.readinessProbe, "/readyz");

  // Termination: the kubelet's SIGTERM drains; its SIGKILL must come after preStop's pause and the drain.
  const preStop = d.xrtc.lifecycle?.preStop;
  const pause = preStop?.sleep?.seconds ??
    (preStop?.exec?.command?.[0] === "sleep" ? Number(preStop.exec.command[1]) : 0);
  assert.ok(!(preStop?.exec?.command ?? []).some((w) => /kill|TERM/.test(w)), "preStop sends no signal");
  assert.ok(
    (pod.terminationGracePeriodSeconds ?? 30) > pause + d.config.options.drainTimeoutMs / 1000,
    `grace ${pod.terminationGracePeriodSeconds} s > preStop ${pause} s + drain_timeout ${
      d.config.options.drainTimeoutMs / 1000
    } s`,
  );

  // The state journal on the node's disk.
  const stateMount = d.xrtc.volumeMounts?.find((m) => d.config.options.stateDir.startsWith(m.mountPath));
  assert.ok(pod.volumes?.find((v) => v.name === stateMount?.name)?.hostPath, "state_dir is on a hostPath");

  assert.ok(matches(d.pdb.spec?.selector, podLabels), "the PodDisruptionBudget selects the DaemonSet's pods");

  // The ServiceMonitor finds the admin port through a Service, by its labels and port name.
  const endpoint = d.monitor.spec.endpoints?.[0];
  const scraped = d.services.filter((s) => matches(d.monitor.spec.selector, s.metadata?.labels));
  assert.equal(scraped.length, 1, "the ServiceMonitor selects one Service");
  const port = scraped[0].spec?.ports?.find((p) => p.name === endpoint?.port);
  assert.equal(
    portNumber(d.xrtc, port?.targetPort),
    admin.addr.port,
    "the ServiceMonitor scrapes the admin port",
  );
  assert.equal(endpoint?.path ?? "/metrics", "/metrics");
  assert.equal(d.monitor.metadata?.namespace, scraped[0].metadata?.namespace);
}

const rendered = new Map<string, K8sObject[]>();
async function renderedOf(dir: string): Promise<K8sObject[]> {
  if (!rendered.has(dir)) rendered.set(dir, await render(`${K8S}${dir}`));
  return rendered.get(dir)!;
}

Deno.test("deploy/k8s: every kustomization renders, and every object and plain manifest passes its schema", async () => {
  assert.ok(OVERLAYS.length >= 3, `overlays: ${OVERLAYS.join(", ")}`);
  for (const dir of DIRS) {
    const k = parse(Deno.readTextFileSync(`${K8S}${dir}/kustomization.yaml`)) as Kustomization;
    for (const r of k.resources ?? []) {
      if (r.startsWith("..")) continue; // another kustomization, rendered on its own
      for (const o of parseObjects(Deno.readTextFileSync(`${K8S}${dir}/${r}`))) validate(o);
    }
    if (k.kind === "Component") continue; // rendered within the overlays that use it
    const objects = await renderedOf(dir);
    assert.ok(objects.length > 0, `${dir} renders objects`);
    for (const o of objects) validate(o);
  }
});

Deno.test("deploy/k8s: the schemas reject a broken object", async () => {
  const ds = (await renderedOf("base")).find((o) => o.kind === "DaemonSet") as unknown as IDaemonSet;
  const broken = structuredClone(ds);
  broken.spec!.template.spec!.hostNetwork = "yes" as unknown as boolean;
  assert.throws(() => validate(broken as unknown as K8sObject), /hostNetwork must be boolean/);
  const noSelector = structuredClone(ds) as unknown as Record<string, Record<string, unknown>>;
  delete noSelector.spec.selector;
  assert.throws(() => validate(noSelector as unknown as K8sObject), /selector/);
  const sm = (await renderedOf("base")).find((o) =>
    o.kind === "ServiceMonitor"
  ) as unknown as IServiceMonitor;
  const badSm = structuredClone(sm);
  badSm.spec.endpoints![0].port = 6090 as unknown as string;
  assert.throws(() => validate(badSm as unknown as K8sObject), /port must be string/);
});

for (const dir of ["base", ...OVERLAYS]) {
  Deno.test(`deploy/k8s/${dir}: host network, signalling-only Services, probes, drain, PDB, ServiceMonitor, routes.yml`, async () => {
    checkDeployment(deployment(await renderedOf(dir)));
  });
}

Deno.test("deploy/k8s: each property check fails on a copy that breaks it", async () => {
  const good = deployment(await renderedOf("base"));
  checkDeployment(good);
  const breaks: [string, (d: Deployment) => void, RegExp][] = [
    ["pod network", (d) => d.ds.spec!.template.spec!.hostNetwork = false, /hostNetwork/],
    [
      "an ICE port on a Service",
      (d) =>
        d.services[0].spec!.ports!.push({ name: "ice", port: 6001, targetPort: "ice-udp", protocol: "UDP" }),
      /exposes no ICE port/,
    ],
    ["a probe elsewhere", (d) => d.xrtc.readinessProbe!.httpGet!.path = "/healthz", /readyz/],
    ["a probe to loopback", (d) => d.xrtc.livenessProbe!.httpGet!.host = "127.0.0.1", /probed on 127.0.0.1/],
    [
      "a short grace period",
      (d) => d.ds.spec!.template.spec!.terminationGracePeriodSeconds = 600,
      /grace 600 s/,
    ],
    ["a longer drain", (d) => d.config.options.drainTimeoutMs = 3_600_000, /drain_timeout 3600 s/],
    [
      "a PDB for other pods",
      (d) => d.pdb.spec!.selector!.matchLabels = { app: "other" },
      /PodDisruptionBudget/,
    ],
    ["a ServiceMonitor on another port", (d) => d.monitor.spec.endpoints![0].port = "http", /admin port/],
    [
      "a ServiceMonitor selecting nothing",
      (d) => d.monitor.spec.selector.matchLabels = { "app.kubernetes.io/component": "none" },
      /selects one Service/,
    ],
    ["state on the container's disk", (d) => d.config.options.stateDir = "/xrtc/state", /hostPath/],
    [
      "another candidate",
      (d) => d.config.listeners[0].net.candidateIps = ["198.18.0.1"],
      /the node's address/,
    ],
  ];
  for (const [what, breakIt, message] of breaks) {
    const d = structuredClone(good);
    d.xrtc = d.ds.spec!.template.spec!.containers.find((c) => c.name === "xrtc")!;
    breakIt(d);
    assert.throws(() => checkDeployment(d), message, what);
  }
});

Deno.test("deploy/k8s: routes.yml needs the DaemonSet's variables, and the cluster overlay's is the base's plus cluster:", async () => {
  const d = deployment(await renderedOf("overlays/cluster"));
  assert.throws(
    () => loadConfigText(d.routesText, "routes.yml", () => undefined),
    /XRTC_CANDIDATE_IP is not set/,
  );
  const cluster = parse(d.routesText) as Record<string, unknown>;
  assert.deepEqual(cluster.cluster, {
    redis: "redis://redis.xrtc.svc:6379",
    node: "${XRTC_NODE_NAME}",
    peer_url: "http://${XRTC_NODE_IP}:6080",
  });
  // The other nodes reach this one's Janus route at peer_url: the port of the listener that has it.
  const peer = new URL(d.config.cluster!.peerUrl);
  const janusListener = d.config.listeners.find((l) => l.http.routes.some((r) => r.tag === "janus"));
  assert.equal(Number(peer.port), janusListener?.net.addr.port, "peer_url names the signalling listener");
  delete cluster.cluster;
  assert.deepEqual(cluster, parse(deployment(await renderedOf("base")).routesText));
  // The external-ip overlay takes the candidate from its init container's file, not from hostIP.
  const ext = deployment(await renderedOf("overlays/external-ip"));
  assert.deepEqual(ext.config.listeners[0].net.candidateIps, [EXTERNAL_IP]);
  assert.equal(ext.xrtc.env?.find((e) => e.name === "XRTC_CANDIDATE_IP"), undefined);
});
