/* Interposes the XNNPACK runtime calls that ExecuTorch's XNNPACK delegate makes on every execute, to time them and,
 * on request, to skip the reshape when no input shape changed since the runtime was last reshaped (what LiteRT's
 * XNNPACK delegate does).
 *
 * Benchmark instrument, not product code: bench_runtime_calls.py builds it and preloads it (LD_PRELOAD) into its
 * own process. ExecuTorch's libexecutorch_backend_xnnpack.so exports XNNPACK's symbols and calls them through its
 * PLT, so these definitions take their place and forward to the originals.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef int (*reshape_value_fn)(void*, uint32_t, size_t, const size_t*);
typedef int (*runtime_fn)(void*);
typedef int (*setup_fn)(void*, size_t, const void*);

enum { RESHAPE, SETUP, INVOKE, SKIPPED, REFUSED, COUNTERS };
enum { MAX_RUNTIMES = 4096 };

static double nanoseconds[COUNTERS];
static uint64_t calls[COUNTERS];
static int skip_unchanged_reshape;

static const uint64_t EMPTY = 1469598103934665603ull; /* FNV-1a offset basis: no shape seen */

/* Per runtime: a hash of the input shapes given since its last reshape, the hash its last reshape saw, and whether
 * its last reshape was skipped (so that a setup XNNPACK refuses can reshape it after all). */
static struct {
  void* runtime;
  uint64_t pending;
  uint64_t reshaped;
  int skipped_last;
} runtimes[MAX_RUNTIMES];

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* The definition this file replaces. The backend library is loaded by Python's dlopen after this file, outside the
 * global scope that RTLD_NEXT searches, so it is looked up by name among the loaded libraries. */
static void* original(const char* name) {
  void* symbol = dlsym(RTLD_NEXT, name);
  if (symbol) return symbol;
  void* backend = dlopen("libexecutorch_backend_xnnpack.so", RTLD_NOLOAD | RTLD_LAZY);
  return backend ? dlsym(backend, name) : NULL;
}

static int slot(void* runtime) {
  for (int i = 0; i < MAX_RUNTIMES; i++) {
    if (runtimes[i].runtime == runtime) return i;
    if (runtimes[i].runtime == NULL) {
      runtimes[i].runtime = runtime;
      runtimes[i].pending = EMPTY;
      return i;
    }
  }
  return -1;
}

static uint64_t mix(uint64_t hash, uint64_t value) { return (hash ^ value) * 1099511628211ull; }

int xnn_reshape_external_value(void* runtime, uint32_t id, size_t num_dims, const size_t* dims) {
  static reshape_value_fn real;
  if (!real) real = (reshape_value_fn)original("xnn_reshape_external_value");
  int i = slot(runtime);
  if (i >= 0) {
    uint64_t hash = mix(runtimes[i].pending, id);
    for (size_t d = 0; d < num_dims; d++) hash = mix(hash, dims[d]);
    runtimes[i].pending = mix(hash, num_dims);
  }
  double start = now_ns();
  int status = real(runtime, id, num_dims, dims);
  nanoseconds[RESHAPE] += now_ns() - start;
  return status;
}

/* Calls a runtime function of XNNPACK's, adding its time and one call to ``counter``. */
static int timed(runtime_fn real, void* runtime, int counter) {
  double start = now_ns();
  int status = real(runtime);
  nanoseconds[counter] += now_ns() - start;
  calls[counter]++;
  return status;
}

static int reshape(void* runtime, int i, uint64_t shapes) {
  static runtime_fn real;
  if (!real) real = (runtime_fn)original("xnn_reshape_runtime");
  int status = timed(real, runtime, RESHAPE);
  if (i >= 0) runtimes[i].reshaped = status == 0 ? shapes : 0, runtimes[i].skipped_last = 0;
  return status;
}

int xnn_reshape_runtime(void* runtime) {
  int i = slot(runtime);
  uint64_t shapes = i >= 0 ? runtimes[i].pending : 0;
  if (i >= 0) runtimes[i].pending = EMPTY;
  if (skip_unchanged_reshape && i >= 0 && runtimes[i].reshaped == shapes) {
    calls[SKIPPED]++;
    runtimes[i].skipped_last = 1;
    return 0; /* xnn_status_success: the runtime is already shaped for these inputs */
  }
  return reshape(runtime, i, shapes);
}

/* A runtime created later at a deleted one's address must not inherit its reshape. */
int xnn_delete_runtime(void* runtime) {
  static runtime_fn real;
  if (!real) real = (runtime_fn)original("xnn_delete_runtime");
  int i = slot(runtime);
  if (i >= 0) runtimes[i].pending = EMPTY, runtimes[i].reshaped = 0, runtimes[i].skipped_last = 0;
  return real(runtime);
}

int xnn_setup_runtime_v2(void* runtime, size_t num_external_values, const void* external_values) {
  static setup_fn real;
  if (!real) real = (setup_fn)original("xnn_setup_runtime_v2");
  double start = now_ns();
  int status = real(runtime, num_external_values, external_values);
  nanoseconds[SETUP] += now_ns() - start;
  calls[SETUP]++;
  int i = slot(runtime);
  if (status != 0 && i >= 0 && runtimes[i].skipped_last) {
    /* XNNPACK refused a runtime whose reshape was skipped: reshape it after all and set it up again. */
    calls[REFUSED]++;
    if (reshape(runtime, i, runtimes[i].reshaped) == 0) status = real(runtime, num_external_values, external_values);
  }
  return status;
}

int xnn_invoke_runtime(void* runtime) {
  static runtime_fn real;
  if (!real) real = (runtime_fn)original("xnn_invoke_runtime");
  return timed(real, runtime, INVOKE);
}

/* The Python side: read and reset the counters (reshape, setup, invoke, skipped, refused), switch skipping on or off,
 * count the runtimes that hold a reshape (a deleted runtime holds none). */
void xnn_call_costs_read(double* ns, uint64_t* counts) {
  for (int k = 0; k < COUNTERS; k++) {
    ns[k] = nanoseconds[k];
    counts[k] = calls[k];
  }
}

void xnn_call_costs_reset(void) {
  for (int k = 0; k < COUNTERS; k++) nanoseconds[k] = 0, calls[k] = 0;
}

void xnn_call_costs_skip_unchanged_reshape(int on) { skip_unchanged_reshape = on; }

int xnn_call_costs_shaped_runtimes(void) {
  int shaped = 0;
  for (int i = 0; i < MAX_RUNTIMES && runtimes[i].runtime != NULL; i++) shaped += runtimes[i].reshaped != 0;
  return shaped;
}
