// A healthprobe probe in C: times a few requests to one URL and grades the slowest
// against latency thresholds, so a service that answers but has become slow shows as
// degraded or unhealthy before its clients time out.
//
// Built with clang and wasi-libc as a WASI preview-1 reactor, against C bindings generated
// from the package `healthprobe wit` prints, then adapted into a component (see build.sh).
// The requests go through the host's `http` import: the host applies the network policy
// and the run's deadline to each one.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "probe.h"

#define MAX_REQUESTS 20

typedef healthprobe_probe_types_param_spec_t param_spec_t;
typedef healthprobe_probe_types_pair_t pair_t;

static void spec(param_spec_t *p, const char *name, const char *description,
                 const char *default_value, bool required) {
    probe_string_dup(&p->name, name);
    probe_string_dup(&p->description, description);
    p->required = required;
    p->default_.is_some = default_value != NULL;
    if (default_value)
        probe_string_dup(&p->default_.val, default_value);
    p->repeatable = false;
}

void exports_probe_describe(probe_probe_info_t *ret) {
    probe_string_dup(&ret->name, "http-latency");
    probe_string_dup(&ret->version, "0.1.0");
    probe_string_dup(&ret->description,
                     "Times a few GET requests to a URL and grades the slowest against "
                     "latency thresholds (C).");
    size_t n = 5;
    param_spec_t *p = calloc(n, sizeof *p);
    spec(&p[0], "url", "URL to request (http:// or https://).", NULL, true);
    spec(&p[1], "requests", "How many requests to time, one after another (1-20).", "3",
         false);
    spec(&p[2], "warn-ms", "Degraded when the slowest request takes at least this many ms.",
         NULL, false);
    spec(&p[3], "critical-ms",
         "Unhealthy when the slowest request takes at least this many ms.", NULL, false);
    spec(&p[4], "expect-status", "Accepted status codes, a range like 200-399.", "200-399",
         false);
    ret->params.ptr = p;
    ret->params.len = n;
}

// A parameter's value as a NUL-terminated copy, or NULL when it was not given.
static char *param(const probe_list_pair_t *params, const char *name) {
    for (size_t i = 0; i < params->len; i++) {
        const pair_t *kv = &params->ptr[i];
        if (kv->f0.len == strlen(name) && memcmp(kv->f0.ptr, name, kv->f0.len) == 0)
            return strndup((const char *)kv->f1.ptr, kv->f1.len);
    }
    return NULL;
}

static bool invalid(probe_check_error_t *err, const char *name, const char *reason) {
    err->tag = HEALTHPROBE_PROBE_TYPES_CHECK_ERROR_INVALID_PARAM;
    probe_string_dup(&err->val.invalid_param.name, name);
    probe_string_dup(&err->val.invalid_param.reason, reason);
    return false;
}

// Parses a whole non-negative decimal number; false if the text is anything else.
static bool number(const char *text, unsigned long long *out) {
    if (!text || !*text || *text == '-' || *text == '+')
        return false;
    char *end;
    errno = 0;
    *out = strtoull(text, &end, 10);
    return errno == 0 && *end == '\0';
}

// An optional numeric parameter; false (with `err` set) when given but not a number.
static bool number_param(const probe_list_pair_t *params, const char *name, bool *given,
                         unsigned long long *value, probe_check_error_t *err) {
    char *text = param(params, name);
    *given = text != NULL;
    bool ok = !text || number(text, value);
    free(text);
    return ok || invalid(err, name, "expected a whole number of milliseconds");
}

static unsigned long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (unsigned long long)t.tv_sec * 1000 + (unsigned long long)t.tv_nsec / 1000000;
}

// A detail whose value is a whole number (typed: a number in JSON, a gauge on /probe).
static void set_detail(healthprobe_probe_types_detail_t *detail, const char *name,
                       unsigned long long value) {
    probe_string_dup(&detail->f0, name);
    detail->f1.tag = HEALTHPROBE_PROBE_TYPES_VALUE_INTEGER;
    detail->f1.val.integer = (int64_t)value;
}

static void verdict(probe_report_t *ret, healthprobe_probe_types_status_t status,
                    const char *message) {
    ret->status = status;
    probe_string_dup(&ret->message, message);
}

// The text of an http error (every variant carries one string).
static char *error_text(const healthprobe_probe_http_error_t *e) {
    return strndup((const char *)e->val.denied.ptr, e->val.denied.len);
}

// `defaulted` names the parameters whose declared default the host filled in.
bool exports_probe_check(probe_list_pair_t *params, probe_list_string_t *defaulted,
                         uint64_t budget_ms, probe_report_t *ret, probe_check_error_t *err) {
    (void)defaulted; // nothing here needs to tell a default from a given value
    unsigned long long requests = 3, warn_ms = 0, critical_ms = 0, lo = 200, hi = 399;
    bool has_warn, has_critical, has_requests;
    char *url = param(params, "url");
    char *range = param(params, "expect-status");
    bool ok = true;
    if (!url || !*url)
        ok = invalid(err, "url", "required: the URL to request");
    else if (!number_param(params, "requests", &has_requests, &requests, err) ||
             !number_param(params, "warn-ms", &has_warn, &warn_ms, err) ||
             !number_param(params, "critical-ms", &has_critical, &critical_ms, err))
        ok = false;
    else if (requests < 1 || requests > MAX_REQUESTS)
        ok = invalid(err, "requests", "expected 1 to 20");
    else if (has_warn && has_critical && warn_ms > critical_ms)
        ok = invalid(err, "warn-ms", "must not be above critical-ms");
    else if (range) {
        char *dash = strchr(range, '-');
        if (dash)
            *dash = '\0';
        if (!number(range, &lo) || !number(dash ? dash + 1 : range, &hi) || lo > hi ||
            hi > 999)
            ok = invalid(err, "expect-status", "expected a status or a range like 200-399");
    }
    free(range);
    if (!ok) {
        free(url);
        return false;
    }

    unsigned long long start = now_ms(), slowest = 0, total = 0;
    unsigned long long done = 0;
    char message[512];
    healthprobe_probe_types_status_t status = HEALTHPROBE_PROBE_TYPES_STATUS_HEALTHY;
    message[0] = '\0';
    for (; done < requests; done++) {
        unsigned long long spent = now_ms() - start;
        healthprobe_probe_http_request_t req = {0};
        probe_string_set(&req.method, "GET");
        probe_string_set(&req.url, url);
        // Each request may take what is left of the budget, no more.
        req.timeout_ms.is_some = true;
        req.timeout_ms.val = budget_ms > spent ? budget_ms - spent : 1;
        healthprobe_probe_http_response_t resp;
        healthprobe_probe_http_error_t e;
        unsigned long long t0 = now_ms();
        if (!healthprobe_probe_http_send(&req, &resp, &e)) {
            char *why = error_text(&e);
            snprintf(message, sizeof message, "request %llu of %llu to %s failed: %s",
                     done + 1, requests, url, why);
            free(why);
            healthprobe_probe_http_error_free(&e);
            status = HEALTHPROBE_PROBE_TYPES_STATUS_UNHEALTHY;
            break;
        }
        unsigned long long took = now_ms() - t0;
        uint16_t code = resp.status;
        healthprobe_probe_http_response_free(&resp);
        total += took;
        if (took > slowest)
            slowest = took;
        if (code < lo || code > hi) {
            char expected[16];
            snprintf(expected, sizeof expected, lo == hi ? "%llu" : "%llu-%llu", lo, hi);
            snprintf(message, sizeof message, "HTTP %u from %s (expected %s)", code, url,
                     expected);
            status = HEALTHPROBE_PROBE_TYPES_STATUS_UNHEALTHY;
            done++;
            break;
        }
    }

    if (status == HEALTHPROBE_PROBE_TYPES_STATUS_HEALTHY) {
        char grade[64] = "";
        if (has_critical && slowest >= critical_ms) {
            status = HEALTHPROBE_PROBE_TYPES_STATUS_UNHEALTHY;
            snprintf(grade, sizeof grade, " (critical at %llu ms)", critical_ms);
        } else if (has_warn && slowest >= warn_ms) {
            status = HEALTHPROBE_PROBE_TYPES_STATUS_DEGRADED;
            snprintf(grade, sizeof grade, " (warning at %llu ms)", warn_ms);
        }
        snprintf(message, sizeof message, "slowest of %llu requests to %s took %llu ms%s",
                 requests, url, slowest, grade);
    }
    verdict(ret, status, message);

    healthprobe_probe_types_detail_t *details = calloc(3, sizeof *details);
    set_detail(&details[0], "requests", done);
    set_detail(&details[1], "slowest-ms", slowest);
    set_detail(&details[2], "mean-ms", done ? total / done : 0);
    ret->details.ptr = details;
    ret->details.len = 3;
    free(url);
    return true;
}
