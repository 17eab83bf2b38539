// Native tests: build.sh compiles and runs them with the system's cc before the component.
#include <assert.h>
#include <string.h>

#include "logic.h"

int main(void) {
    char message[256];
    assert(verdict("u", 200, 200, message, sizeof message));
    assert(strcmp(message, "HTTP 200 from u") == 0);
    assert(!verdict("http://x/health", 503, 200, message, sizeof message));
    assert(strcmp(message, "HTTP 503 from http://x/health (expected 200)") == 0);
    unsigned status;
    assert(parse_status("204", &status) && status == 204);
    assert(!parse_status("OK", &status) && !parse_status("20", &status) &&
           !parse_status("", &status) && !parse_status("2000", &status));
    puts("test.c: all passed");
    return 0;
}
