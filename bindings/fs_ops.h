/*
** bindings/fs_ops.h - the rt.fs functions that move, link, sync and lock files (bindings/fs_ops.c),
** registered by bindings/fs.c with the rest of the module (and confined like them).
*/
#ifndef RTL_FS_OPS_H
#define RTL_FS_OPS_H

#include <lua.h>

int rtl_fs_rename(lua_State *L);     /* fs.rename(from, to) */
int rtl_fs_link(lua_State *L);       /* fs.link(existing, new): a hard link */
int rtl_fs_exchange(lua_State *L);   /* fs.exchange(a, b): swap two paths in one step */
int rtl_fs_sync(lua_State *L);       /* fs.sync(path [, {filesystem = true}]) */
int rtl_fs_lock(lua_State *L);       /* fs.lock(path) -> lock | nil, msg, "EAGAIN" */
int rtl_fs_push_errno(lua_State *L, const char *op, const char *path, int err);
void rtl_fs_ops_open(lua_State *L);  /* the lock metatable */

#endif
