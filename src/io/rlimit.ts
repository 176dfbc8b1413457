// The process's descriptor limit: raised from its soft value to its hard value at start (as nginx's
// worker_rlimit_nofile and Go's runtime do), through libc on Linux when FFI is permitted. Deno itself
// panics in places when descriptors run out, so xRTC's connection limit is derived from this value.
const RLIMIT_NOFILE = 7;

export interface RaisedLimit {
  before: number;
  after: number;
}

/** Raises RLIMIT_NOFILE's soft limit to the hard limit; undefined when that is not possible here. */
export function raiseDescriptorLimit(): RaisedLimit | undefined {
  if (Deno.build.os !== "linux") return undefined;
  let lib: Deno.DynamicLibrary<{
    getrlimit: { parameters: ["i32", "buffer"]; result: "i32" };
    setrlimit: { parameters: ["i32", "buffer"]; result: "i32" };
  }>;
  try {
    lib = Deno.dlopen("libc.so.6", {
      getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
      setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
    });
  } catch {
    return undefined; // FFI not permitted, or no glibc
  }
  try {
    const limits = new BigUint64Array(32); // struct rlimit { rlim_cur; rlim_max }, kept off the V8 heap
    if (lib.symbols.getrlimit(RLIMIT_NOFILE, limits) !== 0) return undefined;
    const [soft, hard] = [limits[0], limits[1]];
    if (soft >= hard) return { before: Number(soft), after: Number(soft) };
    limits[0] = hard;
    if (lib.symbols.setrlimit(RLIMIT_NOFILE, limits) !== 0) {
      return { before: Number(soft), after: Number(soft) };
    }
    return { before: Number(soft), after: Number(hard) };
  } finally {
    lib.close();
  }
}
