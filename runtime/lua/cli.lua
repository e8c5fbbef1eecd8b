-- candled.cli (embedded): the subcommands scripts provide. A script's table may hold
-- `commands = { <command> = function(ctx, args) ... end }`; `candled <command> ...` runs it as a
-- task with ctx = {name, config (the script's options, as in run), tty (stderr is a terminal),
-- daemon (a daemon is running on the same database), out(text) and err(text) (stdout and stderr:
-- scripts have no io library), log} and args = the words after the
-- command. It returns the exit code (default 0); an error it raises is printed as one line and
-- exits 1, or 2 when the error is a table {usage = message} (bad arguments). `--source NAME`
-- picks among the scripts of sources that provide the same command; a script of no source (an
-- exporter) provides its command whatever --source says, and reads --source as its own option.
local sandbox = require "candled.sandbox"
local scripts = require "candled.scripts"
local log = require "rt.log"

local M = {}

local function fail(code, msg)
  io.stderr:write("candled: ", msg, "\n")
  return code
end

function M.run(command, tty, daemon, ...)
  local args = { ... }
  local builtin = require("candled.backup").commands[command] or require("candled.web").commands[command]
    or require("candled.replay").commands[command]
  if builtin then                                                -- the runtime's own commands
    local code, msg, status = builtin(args, { daemon = daemon })
    if not code then return fail(status, msg) end
    return code
  end
  local source
  for i, a in ipairs(args) do
    if a == "--source" then
      source = args[i + 1]
      if not source then return fail(2, command .. ": --source needs a name (see 'candled help " .. command .. "')") end
    end
  end
  local found, sources = {}, {}
  for _, s in ipairs(scripts.discover()) do
    local cmds = s.mod and s.mod.commands
    if type(cmds) == "table" and type(cmds[command]) == "function" then
      sources[#sources + 1] = tostring(s.mod.source or s.name)
      if not source or s.mod.source == source or s.mod.source == nil then found[#found + 1] = s end
    end
  end
  if #found == 0 then
    if source then
      return fail(2, ("%s: no script of source '%s' provides it (sources that do: %s)"):format(command, source,
        #sources > 0 and table.concat(sources, ", ") or "none"))
    end
    return fail(2, ("%s: no script under paths.scripts provides it"):format(command))
  end
  if #found > 1 then
    return fail(2, ("%s: several sources provide it (%s): choose one with --source"):format(command,
      table.concat(sources, ", ")))
  end
  local s = found[1]
  -- The folder the user names with --out is writable by this command (rt.fs confinement), and only
  -- in this process.
  for i, a in ipairs(args) do
    if a == "--out" and args[i + 1] and args[i + 1] ~= "" then sandbox.add_fs_root(args[i + 1]) end
  end
  local ctx = { name = s.name, config = s.config, tty = tty, daemon = daemon, log = sandbox.rt_module("rt.log"),
                out = function(text) io.stdout:write(text) end,
                err = function(text) io.stderr:write(text) end }
  local usage = false
  local ok, code = xpcall(s.mod.commands[command], function(e)
    if type(e) == "table" and type(e.usage) == "string" then
      usage = true
      return e.usage
    end
    if type(e) == "string" and not e:match("^[^\n]*:%d+: ") then return e end   -- error(msg, 0): for the user
    return debug.traceback(tostring(e), 2)
  end, ctx, args)
  if not ok then return fail(usage and 2 or 1, code) end
  return math.tointeger(code) or 0
end

return M
