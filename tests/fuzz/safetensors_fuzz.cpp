// libFuzzer harness for the safetensors reader (include/eigenformer/io/safetensors.hpp).
//
// Any input may be rejected with IoError; anything else (another exception, a crash, undefined behavior, a leak,
// an allocation past -malloc_limit_mb) is a finding. An accepted input must also convert every tensor and
// survive a write/read round trip unchanged. Build and run: see tests/fuzz/CMakeLists.txt.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "eigenformer/io/safetensors.hpp"

namespace {

using namespace eigenformer;
using namespace eigenformer::io;

template <typename T>
void convert(const SafetensorsView& v, const TensorInfo& t) {
  const Tensor<T> out = v.get<T>(t);
  if (out.shape() != t.shape) std::abort();
}

void convert_all(const SafetensorsView& v) {
  for (const TensorInfo& t : v.tensors()) {
    if (is_floating(t.dtype)) {  // never rejected
      convert<float>(v, t);
      convert<double>(v, t);
      continue;
    }
    try {
      convert<std::int64_t>(v, t);
    } catch (const IoError&) {
      if (t.dtype != DType::BOOL) std::abort();  // only BOOL bytes other than 0 and 1 may be rejected
    }
    try {
      convert<bool>(v, t);  // rejects values other than 0 and 1
    } catch (const IoError&) {
    }
  }
}

/// Writing back what was read gives a file that reads back the same (names, dtypes, shapes, bytes, metadata).
void round_trip(const SafetensorsView& v) {
  Writer w;
  for (const TensorInfo& t : v.tensors())
    w.add_bytes(t.name, t.dtype, t.shape, std::vector<std::uint8_t>(v.bytes(t), v.bytes(t) + (t.end - t.begin)));
  w.set_metadata(v.metadata());
  const std::vector<std::uint8_t> again = w.serialize();
  const SafetensorsView u = SafetensorsView::parse(again.data(), again.size(), "round trip");
  if (u.tensors().size() != v.tensors().size() || u.metadata() != v.metadata()) std::abort();
  for (const TensorInfo& t : v.tensors()) {
    const TensorInfo& s = u.info(t.name);
    if (s.dtype != t.dtype || s.shape != t.shape || s.end - s.begin != t.end - t.begin) std::abort();
    if (t.end > t.begin && std::memcmp(u.bytes(s), v.bytes(t), t.end - t.begin) != 0) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  SafetensorsView view;
  try {
    view = SafetensorsView::parse(data, size, "fuzz input");
  } catch (const IoError&) {
    return 0;  // rejected: fine
  }
  convert_all(view);
  round_trip(view);  // an IoError here is a finding: the writer refused what the reader accepted
  return 0;
}
