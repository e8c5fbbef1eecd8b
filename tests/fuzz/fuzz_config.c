/* tests/fuzz/fuzz_config.c - the config loader (runtime/config_load.c, config.c): the input up to
** its first NUL byte is config.lua, what follows are CANDLED_* environment entries separated by
** NUL bytes. Load, validate, defaults and the environment must end in a table or a one-line
** error, never a crash; the chunk gets a short time limit (an endless loop is an error). */
#include <stdio.h>
#include <unistd.h>

#include "fuzz_lua.h"
#include "runtime/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char path[64];
  if (!path[0]) snprintf(path, sizeof path, "/tmp/candled-fuzz-config-%d.lua", (int)getpid());
  const uint8_t *nul = memchr(data, 0, size);
  size_t text_n = nul ? (size_t)(nul - data) : size;
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  fwrite(data, 1, text_n, f);
  fclose(f);
  /* the environment: NUL-separated entries after the text, at most 16 */
  char *envbuf = NULL, *envp[17] = {0};
  if (nul) {
    size_t rest = size - text_n - 1;
    envbuf = malloc(rest + 1);
    if (!envbuf) return 0;
    memcpy(envbuf, nul + 1, rest);
    envbuf[rest] = 0;
    int k = 0;
    for (char *p = envbuf; p < envbuf + rest && k < 16; p += strlen(p) + 1)
      if (*p) envp[k++] = p;
  }
  lua_State *L = fuzz_lua();
  char err[1024];
  err[0] = 0;
  int rc = rt_config_load_limited(L, path, 1, envp, 0.2, err, sizeof err);
  if (rc < 0 && (!err[0] || strchr(err, '\n'))) abort();   /* a failure is one line, never empty */
  fuzz_done(L);
  free(envbuf);
  return 0;
}
