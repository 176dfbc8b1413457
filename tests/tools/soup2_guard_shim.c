/* Debian's simple-whip-client links libsoup2, while webrtcbin's libnice (through gupnp-igd and gssdp)
 * loads libsoup3, whose start-up check aborts the process when it finds the libsoup2 symbol
 * soup_uri_new ("Using libsoup2 and libsoup3 in the same process is not supported"). The WHIP tests
 * preload this: the check's lookup of that one symbol fails, every other lookup is the real one. And
 * libnice's UPnP port mapper (gupnp-igd, the one user of libsoup3) is never started: its thread called
 * into libsoup3 with libsoup2's symbols and sometimes crashed the client as ICE began ("munmap_chunk():
 * invalid pointer"). libnice goes on without UPnP when it gets none; the tests need none. The client's
 * own HTTP (libsoup2) is untouched. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
typedef int gboolean;
typedef void *gpointer;
gboolean g_module_symbol(void *module, const char *name, gpointer *symbol) {
  static gboolean (*real)(void *, const char *, gpointer *);
  if (!real) real = dlsym(RTLD_NEXT, "g_module_symbol");
  if (name && strcmp(name, "soup_uri_new") == 0) { if (symbol) *symbol = 0; return 0; }
  return real(module, name, symbol);
}

void *gupnp_simple_igd_thread_new(void) { return 0; }
