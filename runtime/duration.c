/*
** runtime/duration.c - durations: "250ms", "30s", "5m", "1h", "1d", "2w" or a number of seconds,
** parsed here and nowhere else (config, budgets, schedules and rt.time all call it).
*/
#include "runtime/duration.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>

int rt_duration_parse(const char *s, double *out) {
  char *end;
  if (!s) return -1;
  while (isspace((unsigned char)*s)) s++;
  double v = strtod(s, &end);
  if (end == s || v != v) return -1;
  while (isspace((unsigned char)*end)) end++;
  double mult;
  if (*end == 0 || strcmp(end, "s") == 0) mult = 1;
  else if (strcmp(end, "ms") == 0) mult = 0.001;
  else if (strcmp(end, "m") == 0) mult = 60;
  else if (strcmp(end, "h") == 0) mult = 3600;
  else if (strcmp(end, "d") == 0) mult = 86400;
  else if (strcmp(end, "w") == 0) mult = 7 * 86400;
  else return -1;
  if (!(v > 0) || v * mult > 1e9) return -1;
  *out = v * mult;
  return 0;
}

int rt_duration_value(lua_State *L, int idx, double *out) {
  switch (lua_type(L, idx)) {
  case LUA_TNUMBER:
    *out = lua_tonumber(L, idx);
    return 0;
  case LUA_TSTRING:
    return rt_duration_parse(lua_tostring(L, idx), out);
  default:
    return -2;
  }
}
