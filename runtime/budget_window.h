/*
** runtime/budget_window.h - the arithmetic of one budget window (no I/O, no clock of its own).
**
** Windows of up to an hour slide: counted in 1/100-window slots, each admission held for at least
** one window plus a margin of one slot (or 100 ms when a slot is shorter), so neither a sliding nor
** a fixed limiter on the server side is exceeded. Day and month windows are fixed UTC calendar
** windows.
**
** A window's counts live in an rt_window_state_t: the window's own (`own`) until the budget is
** attached to the database's shared file (budget_shared.h), then a record in that file, so every
** process on the database counts into the same slots. The state also holds the learned limit:
** `eff` > 0 is the limit the server showed it really applies (below the declared one).
**
** Times are wall-clock epoch seconds (rt_now), the one clock every process shares: a clock stepped
** back holds admissions longer than their window, never shorter.
*/
#ifndef RT_BUDGET_WINDOW_H
#define RT_BUDGET_WINDOW_H

#include <stdint.h>

#define RT_WINDOW_SLOTS 100
#define RT_WINDOW_RING (2 * RT_WINDOW_SLOTS + 1)   /* a window, a margin of up to another, one slot */

/* Counts and the learned limit: plain data, valid in a file mapped by several processes. */
typedef struct {
  int64_t cur;               /* sliding: index of the newest slot (epoch seconds / slot) */
  double used;               /* weight counted now */
  double start;              /* fixed: start of the current window */
  double eff;                /* the learned limit, or 0 when the declared limit holds */
  double eff_at;             /* clean windows count from here: the last change, or the end of a pause */
  double probe_wait;         /* clean windows before the next probe: 1, doubled by a failed probe */
  double probed;             /* 1 once the limit was raised since it was last learned */
  double ring[RT_WINDOW_RING];
} rt_window_state_t;

typedef struct {
  double per;                /* seconds (for a month: 0, see `month`) */
  int month;                 /* calendar month (UTC) */
  int fixed;                 /* fixed calendar window (per >= 1 day, or month) */
  double limit, cap;         /* declared: cap = limit * (1 - reserve) */
  char key[24];              /* how the window is named in status and budget_state ("1m", "month") */
  double slot;               /* sliding: seconds per slot */
  int held;                  /* sliding: slots an admission is counted in (window, margin, its own) */
  rt_window_state_t *st;     /* &own, or the shared record */
  rt_window_state_t own;
} rt_window_t;

/// Set up a window of `per` seconds (or a calendar month) with capacity `cap`; st = &own.
void rt_window_init(rt_window_t *w, double per, int month, double limit, double cap);
/// Bring the window to time `now` (drop expired slots / start a new fixed window).
void rt_window_advance(rt_window_t *w, double now);
/// The capacity now: the declared one, or the learned limit less the same reserve share.
double rt_window_capacity(const rt_window_t *w);
/// The limit now: declared, or learned.
double rt_window_limit(const rt_window_t *w);
/// The earliest time >= now at which `weight` more fits (after rt_window_advance(now)).
double rt_window_fits_at(const rt_window_t *w, double weight, double now);
/// Charge `weight` at time now (after rt_window_advance(now)).
void rt_window_charge(rt_window_t *w, double weight);
/// Take back `weight` charged at time `at` (a request the server rejected), if still counted.
void rt_window_uncharge(rt_window_t *w, double weight, double at);
/// Seconds a weight charged now stays counted: the window and its margin (fixed: to its end).
double rt_window_hold(const rt_window_t *w, double now);
/// Start of the fixed window containing t (UTC day multiple or calendar month).
double rt_window_fixed_start(const rt_window_t *w, double t);
/// Its end.
double rt_window_fixed_end(const rt_window_t *w, double start);

#endif
