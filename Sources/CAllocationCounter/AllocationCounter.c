// A counting front for glibc's allocator, linked into the `bench` executable only.
//
// The executable defines malloc, calloc, realloc, memalign, aligned_alloc and posix_memalign; each counts the
// call and forwards to glibc's own implementation, which glibc exports as __libc_malloc and friends. `free`
// stays glibc's. For the definitions to take precedence over the C library's in every shared library (the
// Swift runtime allocates through malloc), they must be in the executable's dynamic symbol table: the
// `make bench` build links with `--export-dynamic-symbol=malloc` etc.; without it the count stays at 0, which
// the benchmark detects and reports as unavailable.
#include "AllocationCounter.h"

#include <errno.h>
#include <stddef.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

static long count;

long minidl_allocation_count(void) { return __atomic_load_n(&count, __ATOMIC_RELAXED); }

static void counted(void) { __atomic_fetch_add(&count, 1, __ATOMIC_RELAXED); }

void *malloc(size_t size) {
    counted();
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
    counted();
    return __libc_calloc(n, size);
}

void *realloc(void *pointer, size_t size) {
    counted();
    return __libc_realloc(pointer, size);
}

void *memalign(size_t alignment, size_t size) {
    counted();
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    counted();
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **result, size_t alignment, size_t size) {
    counted();
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL) return ENOMEM;
    *result = pointer;
    return 0;
}
