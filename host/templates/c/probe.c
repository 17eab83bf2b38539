// {{name}}: a healthprobe probe in C. Sends one GET through the host's HTTP client and
// checks the status code.
//
//   ./build.sh && healthprobe run {{name}}.wasm url=http://127.0.0.1:8080/health
//
// Built with clang and wasi-libc as a WASI preview-1 reactor against the C bindings of
// the WIT package in wit/, then adapted into a component (see build.sh).
#include <stdlib.h>
#include <string.h>

#include "logic.h"
#include "probe.h"

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
    probe_string_dup(&ret->name, "{{name}}");
    probe_string_dup(&ret->version, "0.1.0");
    probe_string_dup(&ret->description, "Checks that a URL answers with the expected status.");
    param_spec_t *p = calloc(2, sizeof *p);
    spec(&p[0], "url", "The URL to request, for example http://127.0.0.1:8080/health.", NULL,
         true);
    spec(&p[1], "expect-status", "The status code that means healthy, for example 204.", "200",
         false);
    ret->params.ptr = p;
    ret->params.len = 2;
}

// A parameter's value as a NUL-terminated copy, or NULL when it has none (the host fills
// in declared defaults, so a parameter with one always has a value).
static char *param(const probe_list_pair_t *params, const char *name) {
    for (size_t i = 0; i < params->len; i++) {
        const pair_t *kv = &params->ptr[i];
        if (kv->f0.len == strlen(name) && memcmp(kv->f0.ptr, name, kv->f0.len) == 0)
            return strndup((const char *)kv->f1.ptr, kv->f1.len);
    }
    return NULL;
}

// `defaulted` names the parameters whose declared default the host filled in.
bool exports_probe_check(probe_list_pair_t *params, probe_list_string_t *defaulted,
                         uint64_t budget_ms, probe_report_t *ret, probe_check_error_t *err) {
    (void)defaulted; // nothing here needs to tell a default from a given value
    char *url = param(params, "url");
    char *expect = param(params, "expect-status");
    unsigned expected = 200;
    if (expect && !parse_status(expect, &expected)) {
        // A bad parameter is the operator's mistake: an error naming it (exit 3).
        err->tag = HEALTHPROBE_PROBE_TYPES_CHECK_ERROR_INVALID_PARAM;
        probe_string_dup(&err->val.invalid_param.name, "expect-status");
        probe_string_dup(&err->val.invalid_param.reason, "expected a status code such as 200");
        free(url);
        free(expect);
        return false;
    }
    free(expect);

    healthprobe_probe_http_request_t req = {0};
    probe_string_set(&req.method, "GET");
    probe_string_set(&req.url, url);
    req.timeout_ms.is_some = true;
    req.timeout_ms.val = budget_ms;
    healthprobe_probe_http_response_t resp;
    healthprobe_probe_http_error_t e;
    char message[512];
    if (!healthprobe_probe_http_send(&req, &resp, &e)) {
        // No answer at all is a verdict too: unhealthy, with the host's reason (every
        // variant of the error carries one string).
        snprintf(message, sizeof message, "%s: %.*s", url, (int)e.val.denied.len,
                 (const char *)e.val.denied.ptr);
        healthprobe_probe_http_error_free(&e);
        ret->status = HEALTHPROBE_PROBE_TYPES_STATUS_UNHEALTHY;
        probe_string_dup(&ret->message, message);
        free(url);
        return true;
    }
    unsigned status = resp.status;
    healthprobe_probe_http_response_free(&resp);
    ret->status = verdict(url, status, expected, message, sizeof message)
                      ? HEALTHPROBE_PROBE_TYPES_STATUS_HEALTHY
                      : HEALTHPROBE_PROBE_TYPES_STATUS_UNHEALTHY;
    probe_string_dup(&ret->message, message);
    // Details are typed: the status is a number in JSON and a gauge on /probe.
    healthprobe_probe_types_detail_t *details = calloc(1, sizeof *details);
    probe_string_dup(&details[0].f0, "status");
    details[0].f1.tag = HEALTHPROBE_PROBE_TYPES_VALUE_INTEGER;
    details[0].f1.val.integer = status;
    ret->details.ptr = details;
    ret->details.len = 1;
    free(url);
    return true;
}
