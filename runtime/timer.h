/*
** runtime/timer.h - one-shot timers with a C completion, for waits that park a task (time.sleep).
** The runtime owns the libuv handle: the caller holds an opaque pointer, valid until the completion
** has run or rt_timer_cancel was called, whichever comes first. Loop thread only.
*/
#ifndef RT_TIMER_H
#define RT_TIMER_H

#include "runtime/rt.h"

typedef struct rt_timer_s rt_timer_t;
typedef void (*rt_timer_fn)(void *ud);

/// Call fn(ud) once, `seconds` from now (rounded to the millisecond; 0 = on the next loop pass).
/// NULL when out of memory.
rt_timer_t *rt_timer_once(rt_t *rt, double seconds, rt_timer_fn fn, void *ud);
/// Stop a timer whose completion has not run yet; fn is never called. The memory goes with the
/// handle's close callback.
void rt_timer_cancel(rt_timer_t *tm);

#endif
