/*
** runtime/config.h - config.lua: load, validate against the schema, apply CANDLED_* overrides.
**
** A config file returns a table. Every key is checked against the schema below (config.c): an
** unknown key or a wrong type is an error naming the file and the key path. Defaults are filled in.
** Environment variables CANDLED_<PATH> (levels joined by "__") override values after loading:
** CANDLED_DATABASE__PATH=/tmp/x.db sets database.path.
*/
#ifndef RT_CONFIG_H
#define RT_CONFIG_H

#include <stddef.h>
#include <lua.h>

#include "runtime/rt.h"

typedef enum {
  RT_CT_ANY, RT_CT_STRING, RT_CT_NUMBER, RT_CT_INTEGER, RT_CT_BOOLEAN,
  RT_CT_DURATION,           /* "30s" / "5m" / number of seconds */
  RT_CT_TABLE,              /* known fields (plus any, when open) */
  RT_CT_MAP,                /* string keys, every value of type `elem` */
  RT_CT_LIST                /* 1..n, every value of type `elem` */
} rt_ctype_t;

typedef struct rt_cfield_s {
  const char *key;
  rt_ctype_t type;
  const struct rt_cfield_s *fields;   /* RT_CT_TABLE: children, ended by {NULL} */
  const struct rt_cfield_s *elem;     /* RT_CT_MAP / RT_CT_LIST: element type */
  const char *dflt;                   /* default as text (NULL: none); tables default to {} */
  int open;                           /* RT_CT_TABLE: unknown keys are allowed (source options) */
  const char *const *choices;         /* RT_CT_STRING: allowed values, NULL-ended, or NULL */
  double min, max;                    /* NUMBER / INTEGER / DURATION: inclusive bounds when min < max */
} rt_cfield_t;

/// The schema of config.lua, and of one budgets.<name> entry (rt.budget.define validates with it).
extern const rt_cfield_t rt_config_schema;
extern const rt_cfield_t rt_config_budget_schema;

/// Load `path` (a Lua chunk run with only safe globals, returning a table), validate it, fill in
/// defaults and apply the environment `envp` (may be NULL). When path is NULL or, with
/// must_exist == 0, missing, an empty table is used. On success leaves the table on L and returns 0;
/// otherwise returns -1 with a one-line message in err naming the file and key.
int rt_config_load(lua_State *L, const char *path, int must_exist, char *const *envp,
                   char *err, size_t errlen);

/// rt_config_load with `seconds` of wall time for the config chunk's top level (an endless loop is
/// interrupted with an error naming the limit); rt_config_load uses RT_CONFIG_TIME_LIMIT.
#define RT_CONFIG_TIME_LIMIT 5.0
int rt_config_load_limited(lua_State *L, const char *path, int must_exist, char *const *envp, double seconds,
                           char *err, size_t errlen);

/// Validate the table at idx against `schema`, filling defaults. `file` names the source in errors.
int rt_config_validate(lua_State *L, int idx, const rt_cfield_t *schema, const char *file,
                       char *err, size_t errlen);

/// Apply CANDLED_* variables from envp to the table at idx (validated afterwards by the caller).
int rt_config_apply_env(lua_State *L, int idx, const rt_cfield_t *schema, char *const *envp,
                        char *err, size_t errlen);

/// Push the value at dotted `path` in the table at idx (nil when absent). Returns its Lua type.
int rt_config_get(lua_State *L, int idx, const char *path);

/// Apply the settings of the validated config at idx that follow a reload (log level, shutdown
/// grace, alert_after_failures, task slice where slices are on, memory limit) to rt
/// (config_apply.c): at start and on every accepted reload, the one path for both.
void rt_config_apply(rt_t *rt, lua_State *L, int idx);

#endif
