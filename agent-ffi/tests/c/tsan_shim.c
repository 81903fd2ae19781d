/*
 * tsan_shim.c - rustc's ThreadSanitizer instrumentation calls
 * __tsan_memcpy / __tsan_memset / __tsan_memmove, which LLVM's runtime
 * exports and GCC's libtsan does not. These forward to the C library
 * functions, which libtsan intercepts (so the accesses are still checked).
 * Linked only into the ThreadSanitizer build of the threads test.
 */
#include <stddef.h>
#include <string.h>

void *__tsan_memcpy(void *d, const void *s, size_t n);
void *__tsan_memset(void *d, int c, size_t n);
void *__tsan_memmove(void *d, const void *s, size_t n);

void *__tsan_memcpy(void *d, const void *s, size_t n) { return memcpy(d, s, n); }
void *__tsan_memset(void *d, int c, size_t n) { return memset(d, c, n); }
void *__tsan_memmove(void *d, const void *s, size_t n) { return memmove(d, s, n); }
