-- Config for the Lua-level tests: the database path comes from CANDLED_DATABASE__PATH (a temp dir).
-- Budgets are small and fast so that the budget tests run in seconds; each test uses its own.
local fast = { base = 0.05, cap = 0.2 }
return {
  log = { level = "warn" },
  http = { timeout = 10 },
  budgets = {
    shared = { windows = { { per = 1, limit = 8 } }, backoff = fast },
    reserved = { windows = { { per = "1m", limit = 100 }, { per = "1d", limit = 1000 }, { per = "month", limit = 5000 } },
                 reserve = 0.1 },
    prio = { windows = { { per = 1, limit = 2 } } },
    small_queue = { windows = { { per = 10, limit = 1 } }, queue = 2 },
    throttled = { windows = { { per = 1, limit = 100 } }, backoff = fast, ban = { after_429s = 3, duration = 1 } },
    banned = { windows = { { per = 1, limit = 100 } }, backoff = fast, ban = { duration = 1 } },
    flaky = { windows = { { per = 1, limit = 100 } }, backoff = fast, retries = 2,
              breaker = { failures = 100 } },
    dead = { windows = { { per = 1, limit = 100 } }, backoff = fast, retries = 0,
             breaker = { failures = 3, cooldown = 1 } },
    header = { windows = { { per = "2s", limit = 10 } }, used_weight_header = "X-Used-Weight-2s" },
    -- declared above what the mock's limiter allows: a ban after two 429s would end the tests
    inflight = { windows = { { per = 1, limit = 10 } }, ban = { after_429s = 2, duration = 60 } },
    learn = { windows = { { per = 1, limit = 10 } }, ban = { after_429s = 2, duration = 60 } },
    nora = { windows = { { per = 2, limit = 6 } }, ban = { after_429s = 2, duration = 60 } },
  },
}
