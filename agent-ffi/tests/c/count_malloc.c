/*
 * count_malloc.c - linked into a test program, counts every call of
 * malloc, calloc, realloc, free (and posix_memalign, aligned_alloc) made
 * after start-up, by anyone: the program, the C library, edge_agent. At exit
 * it prints "heap calls: N" on stderr; the Rust test requires N == 0.
 *
 * stdout is made unbuffered first, so printf itself needs no buffer.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static int counting;
static unsigned long calls;

void *malloc(size_t n) { calls += counting; return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { calls += counting; return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { calls += counting; return __libc_realloc(p, n); }
void free(void *p) { if (p) calls += counting; __libc_free(p); }
int posix_memalign(void **out, size_t align, size_t n) {
    calls += counting;
    *out = __libc_memalign(align, n);
    return *out ? 0 : 12;
}
void *aligned_alloc(size_t align, size_t n) { calls += counting; return __libc_memalign(align, n); }

__attribute__((constructor)) static void start_counting(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    counting = 1;
}

__attribute__((destructor)) static void report(void) {
    char line[64];
    int n;
    counting = 0;
    n = snprintf(line, sizeof line, "heap calls: %lu\n", calls);
    if (n > 0) (void)!write(2, line, (size_t)n);
}
