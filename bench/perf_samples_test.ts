import assert from "node:assert/strict";
import { jsName, kindOf, parsePerfScript } from "./perf_samples.ts";

// Three samples as `perf script -F comm,tid,ip,sym,dso` prints them: a JS function's own code, the
// runtime's native code called from a JS function, and the kernel with no JS frame on the stack.
const SCRIPT = `worker-1 25450
\t    7f8fdc083226 JS:*'drain file:///work/main/src/io/ffi_udp.ts:862:103 (/tmp/perf-25440.map)
\t    7f8fdc081465 JS:+'#drainReady file:///work/main/src/io/ffi_udp.ts:728:14 (/tmp/perf-25440.map)

worker-1 25450
\t         35dedda [unknown] (/work/main/node_modules/deno/deno)
\t    7f8fdc083226 JS:*'drain file:///work/main/src/io/ffi_udp.ts:862:103 (/tmp/perf-25440.map)

c_relay 25001
\tffffffff8a1b2c3d _copy_to_iter ([kernel.kallsyms])
\t         891f5 start_thread (/usr/lib/x86_64-linux-gnu/libc.so.6)
`;

Deno.test("a perf script: samples by thread and by what ran, JS functions with their own and native time", () => {
  const p = parsePerfScript(SCRIPT);
  assert.deepEqual(p.total, 3);
  assert.deepEqual(p.threads.get("worker-1")?.samples, 2);
  assert.deepEqual(p.threads.get("worker-1")?.byKind.js, 1);
  assert.deepEqual(p.threads.get("worker-1")?.byKind.runtime, 1);
  assert.deepEqual(p.threads.get("c_relay")?.byKind.kernel, 1);
  assert.deepEqual([...p.functions], [["drain src/io/ffi_udp.ts:862", { self: 1, runtime: 1, system: 0 }]]);
});

Deno.test("object files and V8's perf map names", () => {
  assert.deepEqual(kindOf("/tmp/perf-25440.map"), "js");
  assert.deepEqual(kindOf("/usr/lib/x86_64-linux-gnu/libc.so.6"), "libc");
  assert.deepEqual(kindOf("/tmp/xrtc-bench-c-x1/c_relay"), "program");
  assert.deepEqual(kindOf("[vdso]"), "other");
  assert.deepEqual(
    jsName("JS:+' file:///work/main/src/ice/demux/udp_port.ts:28:8 (/tmp/perf-1.map)"),
    "(anonymous) src/ice/demux/udp_port.ts:28",
  );
  assert.deepEqual(
    jsName("JS:^async_op_6 ext:core/00_infra.js:339:33 (/tmp/perf-1.map)"),
    "async_op_6 ext:core/00_infra.js:339",
  );
});
