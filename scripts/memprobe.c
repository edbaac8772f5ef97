/* The machine's memory latency as the rule index sees it: one dependent
 * random load at a time, and 16 independent chains at once, over growing
 * working sets, on transparent huge pages. BENCHMARKS.md quotes it.
 *
 *   gcc -O2 scripts/memprobe.c -o target/memprobe && target/memprobe
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define CHAINS 16

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(void) {
  for (size_t mb = 2; mb <= 256; mb *= 2) {
    size_t n = mb * 1024 * 1024 / 64; /* one 64-byte line per node */
    uint64_t *a = aligned_alloc(2 << 20, n * 64);
    size_t *perm = malloc(n * sizeof *perm);
    if (!a || !perm) return 1;
    madvise(a, n * 64, MADV_HUGEPAGE);
    for (size_t i = 0; i < n; i++) perm[i] = i;
    srand(1);
    for (size_t i = n - 1; i > 0; i--) {
      size_t j = ((size_t)rand() * RAND_MAX + rand()) % (i + 1), t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
    }
    /* One random cycle through every line. */
    for (size_t i = 0; i < n; i++) a[perm[i] * 8] = perm[(i + 1) % n] * 8;
    long iters = 2000000;
    size_t p = 0;
    double t0 = now_ns();
    for (long i = 0; i < iters; i++) p = a[p];
    double one = (now_ns() - t0) / iters;
    size_t q[CHAINS];
    for (int k = 0; k < CHAINS; k++) q[k] = perm[k * (n / CHAINS)] * 8;
    t0 = now_ns();
    for (long i = 0; i < iters / CHAINS; i++)
      for (int k = 0; k < CHAINS; k++) q[k] = a[q[k]];
    double many = (now_ns() - t0) / iters;
    size_t sink = p;
    for (int k = 0; k < CHAINS; k++) sink += q[k];
    printf("%4zu MiB: %6.1f ns per dependent load; %5.1f ns per load with %d chains (%zu)\n",
           mb, one, many, CHAINS, sink % 7);
    free(a);
    free(perm);
  }
  return 0;
}
