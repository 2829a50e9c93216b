#include <dlfcn.h>
#include <malloc.h>

#include <ATen/Parallel.h>

#include "worker/command.h"

namespace signround::worker {

void ConfigureEngineThreads(int threads) {
  if (threads <= 0) return;
  at::set_num_threads(threads);
  // LibTorch's BLAS is whatever libblas.so.3 resolves to (OpenBLAS when
  // libopenblas0-pthread is installed); its thread count is separate.
  using SetThreads = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    fn(threads);
  }
}

void ConfigureEngineAllocator() {
  ::mallopt(M_MMAP_THRESHOLD, 1 << 30);
  ::mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace signround::worker
