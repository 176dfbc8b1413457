// The README is the operators' reference: it must list every metric as the catalog declares it, every
// routes.yml key the loader reads, and every admin endpoint. Each check reads the source of truth, so
// a metric or key added without its documentation fails here.
import assert from "node:assert/strict";
import { metricsTable } from "./tools/metrics_doc.ts";
import {
  HEALTH_FIELDS,
  HTTP_FIELDS,
  JANUS_FIELDS,
  LIMIT_FIELDS,
  OPTION_FIELDS,
  ROUTE_FIELDS,
  WHIP_FIELDS,
} from "../src/config/load.ts";
import { ADMIN_PATHS } from "../src/http/server.ts";

const README = Deno.readTextFileSync(new URL("../README.md", import.meta.url));

function section(title: string): string {
  const start = README.indexOf(`\n${title}\n`);
  assert.ok(start >= 0, `README has a section "${title}"`);
  const next = README.slice(start + title.length + 2).search(/\n#{2,3} /);
  return README.slice(start, next < 0 ? undefined : start + title.length + 2 + next);
}

/** A Markdown table's rows as trimmed cells (deno fmt pads the columns; the content is what counts). */
function tableRows(text: string): string[][] {
  return text.split("\n").filter((l) => l.startsWith("|") && !/^\|[-| ]+\|$/.test(l))
    .map((l) => l.slice(1, -1).split("|").map((c) => c.trim()));
}

Deno.test("the README's metric table is the catalog's (regenerate: deno run -A tests/tools/metrics_doc.ts)", () => {
  assert.deepEqual(tableRows(section("### Metrics")), tableRows(metricsTable()));
});

Deno.test("the README's routes.yml reference names every key the loader reads", () => {
  const reference = section("## routes.yml");
  const tables = {
    OPTION_FIELDS,
    LIMIT_FIELDS,
    JANUS_FIELDS,
    HTTP_FIELDS,
    ROUTE_FIELDS,
    HEALTH_FIELDS,
    WHIP_FIELDS,
  };
  const missing: string[] = [];
  for (const [table, fields] of Object.entries(tables)) {
    for (const key of Object.keys(fields)) {
      if (!new RegExp(`\\b${key}:`).test(reference)) missing.push(`${table}.${key}`);
    }
  }
  assert.deepEqual(missing, []);
});

Deno.test("the README lists every admin endpoint", () => {
  const endpoints = section("### Endpoints");
  assert.deepEqual(ADMIN_PATHS.filter((p) => !endpoints.includes(`\`${p}\``)), []);
});

Deno.test("the README has no placeholder left", () => {
  assert.deepEqual(README.match(/@[A-Z_]+@/g) ?? [], []);
});
