import assert from "node:assert/strict";
import { ConfigError, loadConfigText } from "./load.ts";

const FILE = `
options:
  max_sessions: \${XRTC_MAX_SESSIONS} # a number from the environment is read as one
  state_dir: /var/lib/\${XRTC_NODE_NAME}/state
services:
  janus: { proto: upstream, servers: ["http://\${XRTC_JANUS}:8088"] }
  ice_udp:
    proto: udp
    net:
      addr: 0.0.0.0:6001
      candidate_ips: ["\${XRTC_CANDIDATE_IP}", 198.18.0.9] # \${XRTC_NOT_READ} in a comment
  admin:
    proto: admin
    net: { addr: "\${XRTC_NODE_IP}:6090" }
`;

const ENV: Record<string, string> = {
  XRTC_MAX_SESSIONS: "1200",
  XRTC_NODE_NAME: "node-a",
  XRTC_JANUS: "198.18.0.20",
  XRTC_CANDIDATE_IP: "198.18.0.5",
  XRTC_NODE_IP: "198.18.0.6",
};

function problemsOf(text: string, env: Record<string, string>): string[] {
  try {
    loadConfigText(text, "r.yml", (name) => env[name]);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  assert.fail("expected a configuration error");
}

Deno.test("${XRTC_NAME} in a value is the environment variable, anywhere in the value; comments untouched", () => {
  const asked: string[] = [];
  const { config, warnings } = loadConfigText(FILE, "r.yml", (name) => {
    asked.push(name);
    return ENV[name];
  });
  assert.deepEqual(warnings, []);
  assert.equal(config.options.maxSessions, 1200);
  assert.equal(config.options.stateDir, "/var/lib/node-a/state");
  assert.equal(config.upstreams.get("janus")!.backends[0].httpUrl, "http://198.18.0.20:8088");
  assert.deepEqual(config.listeners[0].net.candidateIps, ["198.18.0.5", "198.18.0.9"]);
  assert.deepEqual(config.admin!.addr, { host: "198.18.0.6", port: 6090 });
  assert.ok(!asked.includes("XRTC_NOT_READ"), "a comment is not expanded");
});

Deno.test("an unset or empty variable is an error naming it, with line and YAML path", () => {
  const { XRTC_NODE_IP: _unset, ...env } = ENV;
  const problems = problemsOf(FILE, { ...env, XRTC_CANDIDATE_IP: "" });
  assert.ok(
    problems.some((p) =>
      p ===
        "r.yml:11: services.ice_udp.net.candidate_ips[0]: environment variable XRTC_CANDIDATE_IP is not set (or empty)"
    ),
    problems.join("\n"),
  );
  assert.ok(
    problems.some((p) =>
      p === "r.yml:14: services.admin.net.addr: environment variable XRTC_NODE_IP is not set (or empty)"
    ),
    problems.join("\n"),
  );
});

Deno.test("only ${XRTC_NAME} is expanded: other names and other syntax are errors, keys are left alone", () => {
  for (const value of ["${HOME}", "${xrtc_ip}", "${XRTC_IP:-198.18.0.1}", "${XRTC_IP", "$${XRTC_IP}x${"]) {
    const problems = problemsOf(
      `services:\n  u: { proto: udp, net: { addr: ":6001", candidate_ips: ["${value}"] } }\n`,
      { XRTC_IP: "198.18.0.1", HOME: "/root" },
    );
    assert.ok(
      problems.some((p) => /^r\.yml:2: services\.u\.net\.candidate_ips\[0\]: only "\$\{XRTC_NAME\}"/.test(p)),
      `${value}: ${problems.join("\n")}`,
    );
  }
  // A key is a name, never a reference: it stays as written (an unknown key, so a warning).
  const { warnings } = loadConfigText(
    `services:\n  u: { proto: udp, net: { addr: ":6001", candidate_ips: [198.18.0.1] }, "\${XRTC_IP}": 1 }\n`,
    "r.yml",
    () => "198.18.0.1",
  );
  assert.ok(warnings.some((w) => w.includes("services.u.${XRTC_IP}: unknown key")), warnings.join("\n"));
});

Deno.test("by default the references read the process's environment", () => {
  Deno.env.set("XRTC_TEST_CANDIDATE", "198.18.0.77");
  try {
    const { config } = loadConfigText(
      `services:\n  u: { proto: udp, net: { addr: ":6001", candidate_ips: ["\${XRTC_TEST_CANDIDATE}"] } }\n`,
      "r.yml",
    );
    assert.deepEqual(config.listeners[0].net.candidateIps, ["198.18.0.77"]);
  } finally {
    Deno.env.delete("XRTC_TEST_CANDIDATE");
  }
});
