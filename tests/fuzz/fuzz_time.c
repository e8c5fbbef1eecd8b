/* tests/fuzz/fuzz_time.c - time.parse_iso and time.duration (bindings/time.c) and the duration
** parser under them (runtime/duration.c) on any bytes. A duration that parses is finite. */
#include <math.h>

#include "fuzz_lua.h"
#include "runtime/duration.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_lua();
  fuzz_push_fn(L, "rt.time", "parse_iso");
  lua_pushlstring(L, (const char *)data, size);
  fuzz_pcall(L, 1);
  fuzz_push_fn(L, "rt.time", "duration");
  lua_pushlstring(L, (const char *)data, size);
  fuzz_pcall(L, 1);
  char *s = malloc(size + 1);                  /* the C parser takes a C string */
  if (!s) return 0;
  memcpy(s, data, size);
  s[size] = 0;
  double d;
  if (rt_duration_parse(s, &d) == 0 && !isfinite(d)) abort();
  free(s);
  return 0;
}
