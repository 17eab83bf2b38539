// The check's logic apart from any I/O, so test.c runs it natively (build.sh does).
#ifndef PROBE_LOGIC_H
#define PROBE_LOGIC_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

// Parses a status code (100-999); false for anything else.
static bool parse_status(const char *text, unsigned *out) {
    if (!text || !*text)
        return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || *end || v < 100 || v > 999)
        return false;
    *out = (unsigned)v;
    return true;
}

// Whether `status` is healthy, with the message saying so written into `message`.
static bool verdict(const char *url, unsigned status, unsigned expected, char *message,
                    size_t size) {
    if (status == expected) {
        snprintf(message, size, "HTTP %u from %s", status, url);
        return true;
    }
    snprintf(message, size, "HTTP %u from %s (expected %u)", status, url, expected);
    return false;
}

#endif
