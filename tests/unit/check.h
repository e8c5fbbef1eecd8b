/*
** tests/unit/check.h - the tiny assert macros of the C unit tests (docs/conventions.md, Tests).
**
** A failed check prints `file:line: check failed: ...` and the test goes on; CHECK_DONE() prints
** `N passed, N failed` and is the exit code of main (1 on any failure). RUN(fn) names each test.
*/
#ifndef TESTS_UNIT_CHECK_H
#define TESTS_UNIT_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed_, check_failed_;

static inline int check_report_(int ok, const char *file, int line, const char *what) {
  if (ok) check_passed_++;
  else {
    check_failed_++;
    fflush(stdout);
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
  }
  return ok;
}

/* Each macro evaluates its arguments once and is an expression: `if (!CHECK(p)) return;` works. */
#define CHECK(cond) check_report_(!!(cond), __FILE__, __LINE__, #cond)

#define CHECK_EQ_INT(a, b)                                                                  \
  __extension__({                                                                           \
    long long ca_ = (long long)(a), cb_ = (long long)(b);                                   \
    char cm_[512];                                                                          \
    snprintf(cm_, sizeof cm_, "%s == %s (%lld != %lld)", #a, #b, ca_, cb_);                 \
    check_report_(ca_ == cb_, __FILE__, __LINE__, cm_);                                     \
  })

/* NULL never equals anything, not even NULL. */
#define CHECK_STR(a, b)                                                                     \
  __extension__({                                                                           \
    const char *ca_ = (a), *cb_ = (b);                                                      \
    char cm_[1400];                                                                         \
    snprintf(cm_, sizeof cm_, "%s == %s (\"%.500s\" != \"%.500s\")", #a, #b,                \
             ca_ ? ca_ : "(null)",                                                          \
             cb_ ? cb_ : "(null)");                                                         \
    check_report_(ca_ && cb_ && strcmp(ca_, cb_) == 0, __FILE__, __LINE__, cm_);            \
  })

/* `hay` contains `needle` (for error messages). */
#define CHECK_HAS(hay, needle)                                                              \
  __extension__({                                                                           \
    const char *ca_ = (hay), *cb_ = (needle);                                               \
    char cm_[1400];                                                                         \
    snprintf(cm_, sizeof cm_, "%s contains %s (\"%.500s\" lacks \"%.200s\")", #hay,         \
             #needle, ca_ ? ca_ : "(null)", cb_);                                           \
    check_report_(ca_ && strstr(ca_, cb_) != NULL, __FILE__, __LINE__, cm_);                \
  })

#define CHECK_NEAR(a, b, eps)                                                               \
  __extension__({                                                                           \
    double ca_ = (double)(a), cb_ = (double)(b);                                            \
    char cm_[512];                                                                          \
    snprintf(cm_, sizeof cm_, "%s ~= %s (%.9g != %.9g)", #a, #b, ca_, cb_);                 \
    check_report_(ca_ - cb_ <= (eps) && cb_ - ca_ <= (eps), __FILE__, __LINE__, cm_);       \
  })

#define RUN(fn)                                                                             \
  do {                                                                                      \
    int before_ = check_failed_;                                                            \
    fn();                                                                                   \
    printf("%s %s\n", check_failed_ == before_ ? "ok  " : "FAIL", #fn);                     \
    fflush(stdout);                                                                         \
  } while (0)

#define CHECK_DONE()                                                                        \
  (printf("%d passed, %d failed\n", check_passed_, check_failed_), check_failed_ ? 1 : 0)

#endif
