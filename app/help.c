/*
** app/help.c - `candled help`: the overview, each command's text, and usage errors.
*/
#include "app/app.h"

#include <string.h>

static const char *const help_text[][2] = {
  {"run", "usage: candled run [--config FILE]\n"
          "Start the daemon: open the database, load every script under paths.scripts and run each\n"
          "on its schedule until SIGINT/SIGTERM. FILE defaults to $CANDLED_CONFIG, else ./config.lua.\n"},
  {"eval", "usage: candled eval [--config FILE] FILE|- [ARG...]\n"
           "Run a Lua file (or stdin with -) as a task with every rt.* module and the configured\n"
           "database, then exit: 0 when it ends without error, 1 otherwise. ARGs are the chunk's `...`.\n"
           "print() writes to stdout. Without --config, ./config.lua is used when it exists.\n"},
  {"backfill", "usage: candled backfill [--config FILE] --source SOURCE --pool ID [--timeframe TF[,TF...]|all]\n"
               "                        [--days N]\n"
               "Fetch the history of one instrument now, to N days back (default: the source's\n"
               "history_days), then re-fetch its gaps; a progress bar on a terminal, a summary at the\n"
               "end. Resumes where an interrupted backfill stopped. While a daemon runs on the same\n"
               "database, the daemon does the work (on its budget) and this follows its progress.\n"
               "The source's script does the work\n"
               "(GeckoTerminal: --pool solana_<address>, timeframes 1m 5m 15m 1h 4h 12h 1d;\n"
               "Binance: --source binance_spot|binance_usdm|binance_coinm --symbol SYMBOL\n"
               "[--timeframe 1m[,1h...]], timeframes 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d, 1s on spot).\n"},
  {"watchlist", "usage: candled watchlist [--config FILE] list\n"
                "       candled watchlist [--config FILE] add ADDRESS [--symbol S] [--name N] [--dex D]\n"
                "                                         [--network-address MINT] [--chain C]\n"
                "       candled watchlist [--config FILE] remove ADDRESS\n"
                "Show or edit the watchlist file (sources.geckoterminal.watchlist). Edits are atomic;\n"
                "a running daemon applies them within seconds. Columns add is not given are taken\n"
                "from the database or one API call.\n"},
  {"export", "usage: candled export [--config FILE] qlib --out DIR --freq day|60min|15min|5min|1min\n"
             "                      [--source S] [--instruments A,B,...] [--start DATE] [--end DATE]\n"
             "Write the stored candles as a QLib data root in DIR (calendars/, instruments/, features/),\n"
             "aggregating finer timeframes into complete buckets. Incremental (unchanged files are kept,\n"
             "the result equals a full export) and atomic (DIR holds the previous export until the new\n"
             "one is complete). A progress bar on a terminal, then one summary line.\n"},
  {"repl", "usage: candled repl [--config FILE] [--socket PATH]\n"
           "Attach to the running daemon's REPL (repl.socket, default data/candled.sock beside the\n"
           "config file). Each input runs as a task in the daemon: expressions print their values,\n"
           "statements run, http.get/db.query/time.sleep work; incomplete input asks for more.\n"
           "Variables last for the session. help() lists the helpers: status(), tasks(), budgets(),\n"
           "runs(script [, n]), alerts(), sql(query, ...), reload([name]), run(name), cancel(id),\n"
           "last_error(name). On a terminal: line editing, history (~/.candled_history), Tab\n"
           "completes names and fields, Ctrl-C cancels the running input, Ctrl-D exits.\n"
           "Otherwise stdin is read line by line as if typed, results go to stdout and errors to\n"
           "stderr; exit 1 if any input failed or the daemon cannot be reached.\n"},
  {"reload", "usage: candled reload [--config FILE] [--socket PATH] [NAME]\n"
             "Ask the running daemon to reload one script (or every script, strategy and the config)\n"
             "and print the report. Exit 1 if anything was rejected or no daemon is reachable.\n"},
  {"backup", "usage: candled backup [--config FILE] [--to FILE]\n"
             "Take a verified backup now (SQLite's online backup API: a running daemon keeps writing),\n"
             "into backup.dir (default data/backups beside the config) or FILE. The copy is checked with\n"
             "integrity_check before it gets its name, and recorded (time, size, rows per table).\n"},
  {"status", "usage: candled status [--config FILE]\n"
             "One screen for a shell: whether a daemon holds the database, scripts (last run, status,\n"
             "failures), budgets against their limits, open alerts and series freshness.\n"},
  {"backups", "usage: candled backups [--config FILE]\nList the backups recorded in the database, newest first.\n"},
  {"check", "usage: candled check [--config FILE] [DBFILE]\n"
            "Run SQLite's full integrity_check on the database (or DBFILE, e.g. a backup) and report\n"
            "per table: rows and ok, or the problems found. Exit 0 when all is well, 1 otherwise.\n"},
  {"restore", "usage: candled restore [--config FILE] BACKUP\n"
              "Replace the database with BACKUP after checking it (integrity_check). Refuses while a\n"
              "daemon holds the database. The replaced file is kept as <database>.replaced-<time>.\n"},
  {"replay", "usage: candled replay [--config FILE] --strategy NAME --from DATE --to DATE [--instruments A,B]\n"
             "                      [--timeframes 1m,..] [--source S] [--fees BPS] [--slippage BPS]\n"
             "                      [--capital N] [--out DIR]\n"
             "Feed the stored bars of the range (DATE: YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] or epoch seconds;\n"
             "a --to day is included whole) through strategies/NAME.lua in time order, after its warm-up\n"
             "bars, with a simulated clock. Signals trade at the next bar's open with fees and slippage.\n"
             "Prints the report and writes report.json, report.csv, signals.csv, trades.csv, equity.csv\n"
             "and equity.svg (equity curve and drawdown) into DIR (default replay-NAME).\n"},
  {"help", "usage: candled help [COMMAND]\nShow help for a command.\n"},
  {NULL, NULL}};

void app_usage_overview(FILE *out) {
  fputs("usage: candled <command> [options]\n\n"
        "commands:\n"
        "  run      start the daemon (collect on schedule)\n"
        "  eval     run a Lua file as a task with every rt.* module, then exit\n"
        "  backfill fetch one instrument's history now (with progress)\n"
        "  watchlist list, add or remove watchlist pools\n"
        "  export   write the candles as a QLib dataset (export qlib --out DIR --freq F)\n"
        "  repl     attach to the running daemon (Lua REPL)\n"
        "  reload   reload scripts in the running daemon\n"
        "  status   daemon, scripts, budgets, alerts and freshness on one screen\n"
        "  backup   take a verified backup now;  backups  list them\n"
        "  check    full integrity check per table;  restore  replace the database with a backup\n"
        "  replay   a strategy over stored bars: signals, simulated PnL, report and chart\n"
        "  help     show help for a command\n"
        "  --version\n\n"
        "Run 'candled help <command>' for details.\n", out);
}

int app_usage_error(const char *msg, const char *arg) {
  fprintf(stderr, "candled: %s%s%s (see 'candled help')\n", msg, arg ? ": " : "", arg ? arg : "");
  return 2;
}

int app_help_command(const char *name) {
  for (int i = 0; help_text[i][0]; i++)
    if (strcmp(help_text[i][0], name) == 0) {
      fputs(help_text[i][1], stdout);
      return 0;
    }
  return app_usage_error("no such command", name);
}
