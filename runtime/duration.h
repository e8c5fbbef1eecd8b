/*
** runtime/duration.h - "number or duration": the one parser of durations ("30s", "5m", "1h"...).
*/
#ifndef RT_DURATION_H
#define RT_DURATION_H

#include <lua.h>

/// Parse a duration: "250ms", "30s", "5m", "1h", "1d", "2w" or a plain number of seconds.
/// Returns 0 and seconds in *out, or -1 for anything else (including zero, negative or above 1e9 s).
int rt_duration_parse(const char *s, double *out);

/// The Lua value at idx as seconds: a number as it is (the caller checks its range), a string
/// through rt_duration_parse. Returns 0 with *out set, -1 for a string that is not a duration, -2
/// for any other type (*out untouched).
int rt_duration_value(lua_State *L, int idx, double *out);

#endif
