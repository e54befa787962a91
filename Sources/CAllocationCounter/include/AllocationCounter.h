// Counts heap allocations in the process, for the benchmark (see AllocationCounter.c). Linux, glibc.
#ifndef MINIDL_ALLOCATION_COUNTER_H
#define MINIDL_ALLOCATION_COUNTER_H

/// Calls of malloc, calloc, realloc, memalign, aligned_alloc and posix_memalign since the process started.
long minidl_allocation_count(void);

#endif
