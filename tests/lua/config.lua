-- Config for the Lua-level tests: the database path comes from CANDLED_DATABASE__PATH (a temp dir).
return {
  log = { level = "warn" },
  http = { timeout = 10 },
}
