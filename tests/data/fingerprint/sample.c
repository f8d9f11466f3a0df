#include <stdio.h>
#  define MAX_ITEMS 64 /* upper bound */

static unsigned int count_chars(const char *s, char c) {
    unsigned int n = 0; // running count
    while (*s) {
        if (*s++ == c) n++;
    }
    return n >> 1u;
}
