// C++ kernels for parley::int8_linear / parley::fp16_linear (schemas defined in int8_ops.py).
//
// The Python kernels cost two Python crossings per GEMM (the dispatcher calls back into Python, which
// calls fbgemm's op through the dispatcher again); at ~120 GEMMs per token that was ~3-6 ms of a ~20 ms
// compiled int8 decode step. Here the packed weight is looked up by its handle and applied directly.
#include <ATen/native/quantized/PackedParams.h>
#include <torch/library.h>

#include <mutex>
#include <unordered_map>

namespace {

using Packed = c10::intrusive_ptr<LinearPackedParamsBase>;

std::mutex registry_mutex;
std::unordered_map<int64_t, Packed> registry;

Packed lookup(int64_t handle) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto found = registry.find(handle);
  TORCH_CHECK(found != registry.end(), "parley: no packed int8 weight under handle ", handle);
  return found->second;
}

void put_packed(int64_t handle, Packed packed) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  registry[handle] = std::move(packed);
}

void drop_packed(int64_t handle) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  registry.erase(handle);
}

at::Tensor int8_linear(const at::Tensor& x, int64_t handle, int64_t /*out_features*/, bool reduce_range) {
  return lookup(handle)->apply_dynamic(x, reduce_range);
}

at::Tensor fp16_linear(const at::Tensor& x, int64_t handle, int64_t /*out_features*/) {
  return lookup(handle)->apply_dynamic(x, /*reduce_range=*/false);
}

}  // namespace

TORCH_LIBRARY(parley_native, m) {
  m.def("put_packed(int handle, __torch__.torch.classes.quantized.LinearPackedParamsBase packed) -> ()",
        &put_packed);
  m.def("drop_packed(int handle) -> ()", &drop_packed);
}

TORCH_LIBRARY_IMPL(parley, CPU, m) {
  m.impl("int8_linear", &int8_linear);
  m.impl("fp16_linear", &fp16_linear);
}
