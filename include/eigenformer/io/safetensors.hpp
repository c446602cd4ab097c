// Reader and writer of the safetensors format (huggingface/safetensors): an 8-byte little-endian header length N,
// N bytes of JSON header, then the tensors' bytes, little-endian and row-major, packed without gaps.
//
// Validation follows the reference Rust reader (SafeTensors::read_metadata and Metadata::validate) plus the rules
// its format description states: header at most 100,000,000 bytes and starting with '{', a JSON object whose
// "__metadata__" entry maps strings to strings and whose other entries each hold a known dtype, a shape of
// non-negative integers and data_offsets [begin, end]; sorted by offset the tensors start at 0, tile the data
// exactly (no gap, no overlap, no trailing byte) and each spans numel * dtype size bytes (checked for overflow).
// Duplicate keys are rejected. The writer emits what the reference serializer emits: tensors ordered by
// decreasing dtype alignment then name, compact JSON padded with spaces to a multiple of 8 bytes.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "eigenformer/core/error.hpp"
#include "eigenformer/core/shape.hpp"
#include "eigenformer/io/file.hpp"
#include "eigenformer/tensor/tensor.hpp"

namespace eigenformer::io {

/// Element types eigenformer reads and writes (F16 and BF16 are read only).
enum class DType { F16, BF16, F32, F64, I32, I64, U8, BOOL };

/// The dtype's name in safetensors headers ("F32", "BOOL", ...).
inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::F32:
      return "F32";
    case DType::F64:
      return "F64";
    case DType::I32:
      return "I32";
    case DType::I64:
      return "I64";
    case DType::U8:
      return "U8";
    case DType::BOOL:
      return "BOOL";
  }
  return "?";
}

/// Bytes per element.
inline std::size_t dtype_size(DType d) {
  switch (d) {
    case DType::F16:
    case DType::BF16:
      return 2;
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::F64:
    case DType::I64:
      return 8;
    case DType::U8:
    case DType::BOOL:
      return 1;
  }
  return 0;
}

/// True for F16, BF16, F32 and F64.
inline bool is_floating(DType d) { return d == DType::F16 || d == DType::BF16 || d == DType::F32 || d == DType::F64; }

/// The dtype named s, if eigenformer supports it.
inline std::optional<DType> dtype_from_name(std::string_view s) {
  for (DType d : {DType::F16, DType::BF16, DType::F32, DType::F64, DType::I32, DType::I64, DType::U8, DType::BOOL})
    if (s == dtype_name(d)) return d;
  return std::nullopt;
}

/// The dtype a Tensor<T> is written as.
template <typename T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>)
    return DType::F32;
  else if constexpr (std::is_same_v<T, double>)
    return DType::F64;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return DType::I64;
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return DType::I32;
  else if constexpr (std::is_same_v<T, std::uint8_t>)
    return DType::U8;
  else if constexpr (std::is_same_v<T, bool>)
    return DType::BOOL;
  else
    static_assert(sizeof(T) == 0, "safetensors: element type must be float, double, int64, int32, uint8 or bool");
}

/// Free-form string-to-string metadata (the header's "__metadata__").
using Metadata = std::map<std::string, std::string>;

/// One tensor of a file: its name, dtype, shape and byte range [begin, end) within the data section.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  std::size_t begin = 0;
  std::size_t end = 0;
};

/// The reference reader's limit on the header length; checked before anything is allocated.
inline constexpr std::size_t kMaxHeaderSize = 100000000;

namespace detail {

using eigenformer::detail::concat;

template <typename To, typename From>
To bit_cast(const From& from) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast: sizes differ");
  To to;
  std::memcpy(&to, &from, sizeof(To));
  return to;
}

/// Unsigned integer of N little-endian bytes (portable: no assumption on the host's byte order).
template <typename U>
U load_le(const std::uint8_t* p) {
  U v = 0;
  for (std::size_t i = 0; i < sizeof(U); ++i) v |= static_cast<U>(static_cast<U>(p[i]) << (8 * i));
  return v;
}

template <typename U>
void store_le(std::uint8_t* p, U v) {
  for (std::size_t i = 0; i < sizeof(U); ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
inline constexpr bool kLittleEndianHost = false;
#else
inline constexpr bool kLittleEndianHost = true;
#endif

/// IEEE binary16 -> binary32, exact for every input: subnormals are renormalized, infinities kept, NaNs keep
/// their sign and payload (shifted into the top of the float mantissa, so a quiet NaN stays quiet).
inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  std::uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);  // rebias 15 -> 127
  } else if (mantissa == 0) {
    bits = sign;
  } else {
    // mantissa * 2^-24: shift the leading one up to bit 10; each shift lowers the exponent by one.
    std::uint32_t e = 113;
    while (!(mantissa & 0x400u)) {
      mantissa <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((mantissa & 0x3ffu) << 13);
  }
  return bit_cast<float>(bits);
}

/// bfloat16 -> binary32: bfloat16 is the top half of a float, so this is exact for every input.
inline float bfloat16_to_float(std::uint16_t b) { return bit_cast<float>(static_cast<std::uint32_t>(b) << 16); }

/// True when s is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
inline bool is_valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 1;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
    } else if (c >= 0x80) {
      return false;  // a continuation byte, an overlong lead (c0, c1) or beyond U+10FFFF (f5..ff)
    }
    if (s.size() - i < len) return false;
    // The second byte's range excludes overlong forms (e0, f0), surrogates (ed) and beyond U+10FFFF (f4).
    const unsigned lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
    const unsigned hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
    for (std::size_t k = 1; k < len; ++k) {
      const auto ck = static_cast<unsigned char>(s[i + k]);
      if (ck < (k == 1 ? lo : 0x80) || ck > (k == 1 ? hi : 0xbf)) return false;
    }
    i += len;
  }
  return true;
}

/// a * b, or nullopt when it overflows max.
inline std::optional<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b, std::uint64_t max) {
  if (a != 0 && b > max / a) return std::nullopt;
  return a * b;
}

/// Number of bytes of a tensor of this dtype and shape, or nullopt on overflow. Zero dimensions do not excuse an
/// overflowing product of the others: eigenformer's numel() and strides multiply in Index, so every partial
/// product must fit (the reference accepts [0, 2^40, 2^40]; eigenformer does not).
inline std::optional<std::uint64_t> byte_size(DType dtype, const Shape& shape) {
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<Index>::max());
  std::uint64_t nonzero = 1;
  bool has_zero = false;
  for (Index d : shape) {
    if (d < 0) return std::nullopt;
    if (d == 0) {
      has_zero = true;
      continue;
    }
    const auto p = checked_mul(nonzero, static_cast<std::uint64_t>(d), kMax);
    if (!p) return std::nullopt;
    nonzero = *p;
  }
  if (has_zero) return 0;
  return checked_mul(nonzero, dtype_size(dtype), std::numeric_limits<std::size_t>::max());
}

/// A name as it appears in messages: quoted.
inline std::string quote_name(const std::string& s) { return "'" + s + "'"; }

inline std::string shape_words(const TensorInfo& t) { return concat(dtype_name(t.dtype), " ", to_string(t.shape)); }

/// Names of the safetensors dtypes eigenformer does not read, for a precise message.
inline bool is_reference_only_dtype(std::string_view s) {
  for (const char* d :
       {"I8", "I16", "U16", "U32", "U64", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"})
    if (s == d) return true;
  return false;
}

/// Throws unless the header length n is within the reference's limit and inside a file of size bytes (size >= 8).
inline void check_header_length(const std::string& prefix, std::uint64_t n, std::uintmax_t size) {
  if (n > kMaxHeaderSize)
    throw IoError(concat(prefix, "header length ", n, " exceeds the limit of ", kMaxHeaderSize, " bytes"));
  if (n > size - 8)
    throw IoError(concat(prefix, "header length ", n, " runs past the end of the file (file is ", size,
                         " bytes, expected at least 8 + ", n, ")"));
}

/// SAX handler that turns the header into TensorInfos and metadata without building a JSON document, so memory
/// stays proportional to what the file declares and unknown nested values are skipped without recursion.
class HeaderParser {
 public:
  using json = nlohmann::json;

  explicit HeaderParser(std::string prefix) : prefix_(std::move(prefix)) {}

  std::vector<TensorInfo> tensors;
  Metadata metadata;

  bool null() { return scalar("null"); }
  bool boolean(bool) { return scalar("a boolean"); }
  bool number_integer(json::number_integer_t v) {
    if (state_ == State::kSkip) return skip_scalar();
    if (state_ == State::kShape || state_ == State::kOffsets) {
      if (v < 0) fail_tensor(concat(field_name(), " holds ", v, ", expected non-negative integers"));
      return number_unsigned(static_cast<json::number_unsigned_t>(v));
    }
    return scalar("a number");
  }
  bool number_unsigned(json::number_unsigned_t v) {
    if (state_ == State::kSkip) return skip_scalar();
    if (state_ == State::kShape) {
      if (v > static_cast<std::uint64_t>(std::numeric_limits<Index>::max()))
        fail_tensor(
            concat("shape dimension ", v, " is too large (expected at most ", std::numeric_limits<Index>::max(), ")"));
      current_.shape.push_back(static_cast<Index>(v));
      return true;
    }
    if (state_ == State::kOffsets) {
      if (offsets_seen_ >= 2) fail_tensor("data_offsets has more than 2 entries, expected [begin, end]");
      if (v > std::numeric_limits<std::size_t>::max()) fail_tensor(concat("data_offsets entry ", v, " is too large"));
      (offsets_seen_ == 0 ? current_.begin : current_.end) = static_cast<std::size_t>(v);
      ++offsets_seen_;
      return true;
    }
    return scalar("a number");
  }
  bool number_float(json::number_float_t, const json::string_t& text) {
    if (state_ == State::kSkip) return skip_scalar();
    if (state_ == State::kShape || state_ == State::kOffsets)
      fail_tensor(concat(field_name(), " holds ", text, ", expected non-negative integers"));
    return scalar("a number");
  }
  bool string(json::string_t& s) {
    switch (state_) {
      case State::kSkip:
        return skip_scalar();
      case State::kDtype: {
        const std::optional<DType> d = dtype_from_name(s);
        if (!d) {
          if (is_reference_only_dtype(s))
            fail_tensor(concat("dtype '", s,
                               "' is not supported by eigenformer (expected one of F16, BF16, F32, "
                               "F64, I32, I64, U8, BOOL)"));
          fail_tensor(concat("unknown dtype '", s, "' (expected one of F16, BF16, F32, F64, I32, I64, U8, BOOL)"));
        }
        current_.dtype = *d;
        state_ = State::kEntry;
        return true;
      }
      case State::kMetaValue:
        metadata.emplace(std::move(meta_key_), std::move(s));
        state_ = State::kMeta;
        return true;
      default:
        return scalar("a string");
    }
  }
  bool binary(json::binary_t&) { return scalar("binary data"); }

  bool start_object(std::size_t) {
    switch (state_) {
      case State::kRoot:
        state_ = State::kTop;
        return true;
      case State::kTopValue:
        state_ = State::kEntry;
        return true;
      case State::kMetaStart:
        state_ = State::kMeta;
        return true;
      case State::kSkip:
        ++skip_depth_;
        return true;
      default:
        return scalar("an object");
    }
  }
  bool start_array(std::size_t) {
    switch (state_) {
      case State::kShapeStart:
        state_ = State::kShape;
        return true;
      case State::kOffsetsStart:
        state_ = State::kOffsets;
        return true;
      case State::kSkip:
        ++skip_depth_;
        return true;
      default:
        return scalar("an array");
    }
  }
  bool key(json::string_t& k) {
    switch (state_) {
      case State::kTop:
        if (!top_keys_.insert(k).second) fail(concat("duplicate key ", quote_name(k), " in the header"));
        if (k == "__metadata__") {
          state_ = State::kMetaStart;
        } else {
          current_ = TensorInfo{};
          current_.name = std::move(k);
          seen_dtype_ = seen_shape_ = seen_offsets_ = false;
          state_ = State::kTopValue;
        }
        return true;
      case State::kMeta:
        if (metadata.count(k)) fail(concat("duplicate key ", quote_name(k), " in __metadata__"));
        meta_key_ = std::move(k);
        state_ = State::kMetaValue;
        return true;
      case State::kEntry:
        if (k == "dtype") return field(seen_dtype_, State::kDtype, k);
        if (k == "shape") return field(seen_shape_, State::kShapeStart, k);
        if (k == "data_offsets") return field(seen_offsets_, State::kOffsetsStart, k);
        state_ = State::kSkip;  // unknown fields are ignored, as the reference (serde) does
        skip_depth_ = 0;
        return true;
      case State::kSkip:
        return true;
      default:
        fail("unexpected key in the header");
        return false;
    }
  }
  bool end_object() {
    switch (state_) {
      case State::kTop:
        state_ = State::kDone;
        return true;
      case State::kMeta:
        state_ = State::kTop;
        return true;
      case State::kEntry:
        if (!seen_dtype_) fail_tensor("entry has no 'dtype'");
        if (!seen_shape_) fail_tensor("entry has no 'shape'");
        if (!seen_offsets_) fail_tensor("entry has no 'data_offsets'");
        tensors.push_back(std::move(current_));
        state_ = State::kTop;
        return true;
      case State::kSkip:
        return end_skipped();
      default:
        fail("unbalanced object in the header");
        return false;
    }
  }
  bool end_array() {
    switch (state_) {
      case State::kShape:
        state_ = State::kEntry;
        return true;
      case State::kOffsets:
        if (offsets_seen_ != 2)
          fail_tensor(concat("data_offsets has ", offsets_seen_, " entries, expected [begin, end]"));
        state_ = State::kEntry;
        return true;
      case State::kSkip:
        return end_skipped();
      default:
        fail("unbalanced array in the header");
        return false;
    }
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    fail(concat("header is not valid JSON: ", e.what()));
    return false;
  }

 private:
  enum class State {
    kRoot,
    kTop,
    kTopValue,
    kMetaStart,
    kMeta,
    kMetaValue,
    kEntry,
    kDtype,
    kShapeStart,
    kShape,
    kOffsetsStart,
    kOffsets,
    kSkip,
    kDone
  };

  [[noreturn]] void fail(const std::string& what) const { throw IoError(prefix_ + what); }
  [[noreturn]] void fail_tensor(const std::string& what) const {
    fail(concat("tensor ", quote_name(current_.name), ": ", what));
  }
  const char* field_name() const { return state_ == State::kShape ? "shape" : "data_offsets"; }

  bool field(bool& seen, State next, const std::string& k) {
    if (seen) fail_tensor(concat("duplicate field '", k, "'"));
    seen = true;
    state_ = next;
    if (next == State::kOffsetsStart) offsets_seen_ = 0;
    return true;
  }
  bool skip_scalar() {
    if (skip_depth_ == 0) state_ = State::kEntry;
    return true;
  }
  bool end_skipped() {
    if (--skip_depth_ == 0) state_ = State::kEntry;
    return true;
  }
  /// A value that does not belong where it stands: says what was expected there.
  bool scalar(const char* got) {
    switch (state_) {
      case State::kSkip:
        return skip_scalar();
      case State::kRoot:
        fail(concat("header is ", got, ", expected a JSON object"));
      case State::kTopValue:
        fail_tensor(concat("entry is ", got, ", expected an object with dtype, shape and data_offsets"));
      case State::kMetaStart:
        if (std::string_view(got) == "null") {  // Option<HashMap> in the reference: null means no metadata
          state_ = State::kTop;
          return true;
        }
        fail(concat("__metadata__ is ", got, ", expected an object of strings"));
      case State::kMetaValue:
        fail(concat("__metadata__ value of ", quote_name(meta_key_), " is ", got, ", expected a string"));
      case State::kDtype:
        fail_tensor(concat("dtype is ", got, ", expected a string such as \"F32\""));
      case State::kShapeStart:
        fail_tensor(concat("shape is ", got, ", expected an array of non-negative integers"));
      case State::kShape:
        fail_tensor(concat("shape holds ", got, ", expected non-negative integers"));
      case State::kOffsetsStart:
        fail_tensor(concat("data_offsets is ", got, ", expected [begin, end]"));
      case State::kOffsets:
        fail_tensor(concat("data_offsets holds ", got, ", expected non-negative integers"));
      default:
        fail(concat("unexpected ", got, " in the header"));
    }
  }

  std::string prefix_;
  State state_ = State::kRoot;
  TensorInfo current_;
  bool seen_dtype_ = false, seen_shape_ = false, seen_offsets_ = false;
  int offsets_seen_ = 0;
  std::size_t skip_depth_ = 0;
  std::string meta_key_;
  std::unordered_set<std::string> top_keys_;
};

}  // namespace detail

/// A validated, non-owning view of a safetensors file held in memory: the caller keeps the bytes alive.
class SafetensorsView {
 public:
  SafetensorsView() = default;

  /// Parses and validates size bytes; throws IoError naming source_name (and the tensor) on any violation.
  static SafetensorsView parse(const std::uint8_t* data, std::size_t size, const std::string& source_name) {
    using detail::concat;
    SafetensorsView v;
    v.source_ = source_name;
    const std::string prefix = concat("safetensors: ", source_name, ": ");
    if (size < 8) throw IoError(concat(prefix, "file is ", size, " bytes, expected at least 8 (the header length)"));
    const std::uint64_t n = detail::load_le<std::uint64_t>(data);
    detail::check_header_length(prefix, n, size);
    const auto* header = reinterpret_cast<const char*>(data + 8);
    if (n == 0 || header[0] != '{')
      throw IoError(concat(prefix, "header does not start with '{' (expected a JSON object)"));

    // nlohmann's lexer takes a NUL byte for the end of input; JSON allows none outside escapes, so any NUL is
    // an error (else "{}\0<anything>" would pass).
    if (const void* nul = std::memchr(header, 0, static_cast<std::size_t>(n)))
      throw IoError(concat(prefix, "header is not valid JSON: NUL byte at header offset ",
                           static_cast<const char*>(nul) - header));
    detail::HeaderParser parser(prefix);
    nlohmann::json::sax_parse(header, header + n, &parser);  // strict: only whitespace may follow the object
    v.metadata_ = std::move(parser.metadata);
    v.tensors_ = std::move(parser.tensors);
    std::sort(v.tensors_.begin(), v.tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
      if (a.begin != b.begin) return a.begin < b.begin;
      if (a.end != b.end) return a.end < b.end;
      return a.name < b.name;
    });

    const std::size_t data_size = size - 8 - static_cast<std::size_t>(n);
    std::size_t expected_begin = 0;
    for (std::size_t i = 0; i < v.tensors_.size(); ++i) {
      const TensorInfo& t = v.tensors_[i];
      const std::string where = concat(prefix, "tensor ", detail::quote_name(t.name), ": ");
      const std::string offsets = concat("data_offsets [", t.begin, ", ", t.end, "]");
      if (t.begin != expected_begin) {
        if (i == 0) throw IoError(concat(where, offsets, " do not start at 0 (the first tensor must begin the data)"));
        const TensorInfo& prev = v.tensors_[i - 1];
        if (t.begin > expected_begin)
          throw IoError(concat(where, offsets, " leave a gap of ", t.begin - expected_begin, " bytes after tensor ",
                               detail::quote_name(prev.name), " (expected begin ", expected_begin, ")"));
        throw IoError(concat(where, offsets, " overlap tensor ", detail::quote_name(prev.name), " (expected begin ",
                             expected_begin, ", where it ends)"));
      }
      if (t.end < t.begin) throw IoError(concat(where, offsets, " end before they begin"));
      const std::optional<std::uint64_t> bytes = detail::byte_size(t.dtype, t.shape);
      if (!bytes) throw IoError(concat(where, "shape ", to_string(t.shape), " overflows the element count"));
      if (t.end - t.begin != *bytes)
        throw IoError(concat(where, offsets, " span ", t.end - t.begin, " bytes, expected ", *bytes, " for ",
                             detail::shape_words(t)));
      if (t.end > data_size)
        throw IoError(concat(where, offsets, " run past the end of the file: the data section is ", data_size,
                             " bytes (file truncated?)"));
      expected_begin = t.end;
    }
    if (expected_begin != data_size)
      throw IoError(concat(prefix, data_size - expected_begin, " trailing bytes after the last tensor (the tensors end",
                           " at data offset ", expected_begin, ", the data section is ", data_size, " bytes)"));
    for (std::size_t i = 0; i < v.tensors_.size(); ++i) v.index_.emplace(v.tensors_[i].name, i);
    v.data_ = data + 8 + n;
    return v;
  }

  /// The name given to parse() (the path for files).
  const std::string& source_name() const { return source_; }
  /// Every tensor, in data-offset order. On a temporary (`read_safetensors(p).tensors()` in a range-for) a copy,
  /// so that it cannot dangle.
  const std::vector<TensorInfo>& tensors() const& { return tensors_; }
  std::vector<TensorInfo> tensors() && { return std::move(tensors_); }
  const Metadata& metadata() const& { return metadata_; }
  Metadata metadata() && { return std::move(metadata_); }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  /// The tensor called name; throws IoError when there is none.
  const TensorInfo& info(const std::string& name) const {
    const auto it = index_.find(name);
    if (it == index_.end())
      throw IoError(detail::concat("safetensors: ", source_, ": no tensor named ", detail::quote_name(name),
                                   " (the file holds ", tensors_.size(), " tensors)"));
    return tensors_[it->second];
  }
  /// The tensor's raw little-endian bytes (end - begin of them).
  const std::uint8_t* bytes(const TensorInfo& t) const { return data_ + t.begin; }

  /// The tensor converted to T: float/double from F16, BF16, F32, F64; std::int64_t from I64, I32, U8, BOOL; bool
  /// from BOOL, U8, I32, I64 holding only 0 and 1. Throws IoError naming the tensor otherwise.
  template <typename T>
  Tensor<T> get(const std::string& name) const {
    return get<T>(info(name));
  }
  template <typename T>
  Tensor<T> get(const TensorInfo& t) const;

 private:
  std::string source_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, std::size_t> index_;
  Metadata metadata_;
  const std::uint8_t* data_ = nullptr;
};

namespace detail {

/// Element i of an integer tensor's bytes (I64, I32, U8 or BOOL) as an int64.
inline std::int64_t load_integer(DType d, const std::uint8_t* p, Index i) {
  switch (d) {
    case DType::I64:
      return bit_cast<std::int64_t>(load_le<std::uint64_t>(p + 8 * i));
    case DType::I32:
      return bit_cast<std::int32_t>(load_le<std::uint32_t>(p + 4 * i));
    default:
      return p[i];  // U8, BOOL
  }
}

/// Copies n elements of U's little-endian bytes into out (a memcpy on little-endian hosts).
template <typename T, typename U>
void copy_le(const std::uint8_t* p, Index n, T* out) {
  static_assert(sizeof(T) == sizeof(U), "copy_le: sizes differ");
  if constexpr (kLittleEndianHost) {
    if (n > 0) std::memcpy(out, p, static_cast<std::size_t>(n) * sizeof(T));
  } else {
    for (Index i = 0; i < n; ++i) out[i] = bit_cast<T>(load_le<U>(p + sizeof(U) * i));
  }
}

}  // namespace detail

template <typename T>
Tensor<T> SafetensorsView::get(const TensorInfo& t) const {
  using detail::concat;
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int64_t> ||
                    std::is_same_v<T, bool>,
                "SafetensorsView::get: T must be float, double, std::int64_t or bool");
  const auto fail = [&](const std::string& what) -> IoError {
    return IoError(concat("safetensors: ", source_, ": tensor ", detail::quote_name(t.name), ": ", what));
  };
  Tensor<T> out = Tensor<T>::empty(t.shape);
  const Index n = out.numel();
  const std::uint8_t* p = data_ + t.begin;
  T* o = out.data();
  if constexpr (std::is_floating_point_v<T>) {
    switch (t.dtype) {
      case DType::F16:
        for (Index i = 0; i < n; ++i)
          o[i] = static_cast<T>(detail::half_to_float(detail::load_le<std::uint16_t>(p + 2 * i)));
        break;
      case DType::BF16:
        for (Index i = 0; i < n; ++i)
          o[i] = static_cast<T>(detail::bfloat16_to_float(detail::load_le<std::uint16_t>(p + 2 * i)));
        break;
      case DType::F32:
        if constexpr (std::is_same_v<T, float>) {
          detail::copy_le<float, std::uint32_t>(p, n, o);
        } else {
          for (Index i = 0; i < n; ++i)
            o[i] = static_cast<T>(detail::bit_cast<float>(detail::load_le<std::uint32_t>(p + 4 * i)));
        }
        break;
      case DType::F64:
        if constexpr (std::is_same_v<T, double>) {
          detail::copy_le<double, std::uint64_t>(p, n, o);
        } else {
          // Narrowing rounds to nearest; values beyond float's range become +-inf (IEEE 754).
          for (Index i = 0; i < n; ++i)
            o[i] = static_cast<T>(detail::bit_cast<double>(detail::load_le<std::uint64_t>(p + 8 * i)));
        }
        break;
      default:
        throw fail(concat("dtype ", dtype_name(t.dtype), " cannot be read as ",
                          std::is_same_v<T, float> ? "float" : "double", " (expected F16, BF16, F32 or F64)"));
    }
  } else {
    if (is_floating(t.dtype))
      throw fail(concat("dtype ", dtype_name(t.dtype), " cannot be read as ",
                        std::is_same_v<T, bool> ? "bool" : "int64", " (expected I64, I32, U8 or BOOL)"));
    if constexpr (std::is_same_v<T, std::int64_t>) {
      if (t.dtype == DType::I64) {
        detail::copy_le<std::int64_t, std::uint64_t>(p, n, o);
        return out;
      }
    }
    for (Index i = 0; i < n; ++i) {
      const std::int64_t v = detail::load_integer(t.dtype, p, i);
      if constexpr (std::is_same_v<T, bool>) {
        if (v != 0 && v != 1) throw fail(concat("element ", i, " is ", v, ", expected 0 or 1 for bool"));
        o[i] = v == 1;
      } else {
        if (t.dtype == DType::BOOL && v > 1) throw fail(concat("BOOL element ", i, " is ", v, ", expected 0 or 1"));
        o[i] = v;
      }
    }
  }
  return out;
}

/// A safetensors file read into memory: owns its bytes (shared by copies) and offers the SafetensorsView API.
class SafetensorsFile : public SafetensorsView {
 public:
  /// Reads and validates the file; throws IoError naming the path. The header length is checked against the file
  /// size before the data is read, so no length in the file can cause a large allocation.
  static SafetensorsFile read(const std::filesystem::path& path) {
    using detail::concat;
    const std::string name = path.string();
    const auto fail = [&](const std::string& what) { return IoError(concat("safetensors: ", name, ": ", what)); };
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) throw fail("is a directory, expected a file");
    const std::uintmax_t size = std::filesystem::file_size(path, ec);
    if (ec) throw fail(concat("cannot read: ", ec.message()));
    std::ifstream in(path, std::ios::binary);
    if (!in) throw fail(concat("cannot open: ", std::strerror(errno)));
    if (size < 8) throw fail(concat("file is ", size, " bytes, expected at least 8 (the header length)"));
    std::uint8_t prefix[8];
    if (!in.read(reinterpret_cast<char*>(prefix), 8)) throw fail("cannot read the header length");
    detail::check_header_length(concat("safetensors: ", name, ": "), detail::load_le<std::uint64_t>(prefix), size);
    if (size > std::numeric_limits<std::size_t>::max()) throw fail("file is too large for this platform");
    auto bytes = std::make_shared<std::vector<std::uint8_t>>(static_cast<std::size_t>(size));
    std::memcpy(bytes->data(), prefix, 8);
    in.read(reinterpret_cast<char*>(bytes->data() + 8), static_cast<std::streamsize>(size - 8));
    if (static_cast<std::uintmax_t>(in.gcount()) != size - 8)
      throw fail(concat("read ", in.gcount() + 8, " of ", size, " bytes (file changed while reading?)"));
    SafetensorsFile f;
    static_cast<SafetensorsView&>(f) = SafetensorsView::parse(bytes->data(), bytes->size(), name);
    f.bytes_ = std::move(bytes);
    return f;
  }

 private:
  std::shared_ptr<const std::vector<std::uint8_t>> bytes_;
};

/// Reads and validates a safetensors file (see SafetensorsFile::read).
inline SafetensorsFile read_safetensors(const std::filesystem::path& path) { return SafetensorsFile::read(path); }

/// Collects named tensors and metadata, then writes them as one safetensors file: to a temporary file in the
/// target's directory that is renamed over the target, so a failed write leaves any old file untouched.
/// Tensors are held by handle (shallow copies): their values are read when write() or serialize() runs.
class Writer {
 public:
  /// Adds a tensor under a unique name; T is float, double, std::int64_t, std::int32_t, std::uint8_t or bool.
  template <typename T>
  Writer& add(const std::string& name, const Tensor<T>& t) {
    constexpr DType d = dtype_of<T>();
    check_name(name);
    if (!t.defined())
      throw IoError(detail::concat("safetensors Writer::add: tensor ", detail::quote_name(name), " is undefined"));
    Entry e;
    e.name = name;
    e.dtype = d;
    e.shape = t.shape();
    e.nbytes = static_cast<std::size_t>(t.numel()) * sizeof(T);
    e.emit = [t](std::FILE* f, std::vector<std::uint8_t>* out) { return emit_elements(t, f, out); };
    push(std::move(e));
    return *this;
  }
  /// Adds raw little-endian bytes of any supported dtype (F16 and BF16 included); their count must be
  /// numel(shape) * dtype_size(dtype).
  Writer& add_bytes(const std::string& name, DType dtype, const Shape& shape, std::vector<std::uint8_t> bytes) {
    using detail::concat;
    check_name(name);
    const std::optional<std::uint64_t> need = detail::byte_size(dtype, shape);
    if (!need || *need != bytes.size())
      throw IoError(concat("safetensors Writer::add_bytes: tensor ", detail::quote_name(name), " has ", bytes.size(),
                           " bytes, expected ", need ? concat(*need) : std::string("a valid shape"), " for ",
                           dtype_name(dtype), " ", to_string(shape)));
    Entry e;
    e.name = name;
    e.dtype = dtype;
    e.shape = shape;
    e.nbytes = bytes.size();
    auto shared = std::make_shared<const std::vector<std::uint8_t>>(std::move(bytes));
    e.emit = [shared](std::FILE* f, std::vector<std::uint8_t>* out) {
      return write_bytes(shared->data(), shared->size(), f, out);
    };
    push(std::move(e));
    return *this;
  }
  /// Sets one "__metadata__" entry (keys and values must be valid UTF-8).
  Writer& set_metadata(const std::string& key, const std::string& value) {
    if (!detail::is_valid_utf8(key) || !detail::is_valid_utf8(value))
      throw IoError(detail::concat("safetensors Writer::set_metadata: key ", detail::quote_name(key),
                                   " or its value is not valid UTF-8"));
    metadata_[key] = value;
    return *this;
  }
  Writer& set_metadata(const Metadata& m) {
    for (const auto& [k, v] : m) set_metadata(k, v);
    return *this;
  }

  /// The whole file in memory.
  std::vector<std::uint8_t> serialize() const {
    const std::vector<const Entry*> order = ordered();
    std::vector<std::uint8_t> out = prefix_and_header(order, "safetensors Writer::serialize");
    for (const Entry* e : order) e->emit(nullptr, &out);
    return out;
  }

  /// Writes the file atomically (io/file.hpp: temporary file, fsync, rename, folder fsync); throws IoError
  /// naming path on failure, leaving any previous file unchanged.
  void write(const std::filesystem::path& path) const {
    const std::vector<const Entry*> order = ordered();
    const std::vector<std::uint8_t> head = prefix_and_header(order, detail::concat("save_safetensors: ", path.string()));
    write_file_atomically(
        path,
        [&](std::FILE* f) {
          if (std::fwrite(head.data(), 1, head.size(), f) != head.size()) return false;
          for (const Entry* e : order)
            if (!e->emit(f, nullptr)) return false;
          return true;
        },
        "save_safetensors");
  }

 private:
  struct Entry {
    std::string name;
    DType dtype = DType::F32;
    Shape shape;
    std::size_t nbytes = 0;
    std::function<bool(std::FILE*, std::vector<std::uint8_t>*)> emit;  // to the file, or appended to out
  };

  static bool write_bytes(const std::uint8_t* p, std::size_t n, std::FILE* f, std::vector<std::uint8_t>* out) {
    if (out) {
      out->insert(out->end(), p, p + n);
      return true;
    }
    return std::fwrite(p, 1, n, f) == n;
  }

  template <typename T>
  static bool emit_elements(const Tensor<T>& t, std::FILE* f, std::vector<std::uint8_t>* out) {
    const auto* raw = reinterpret_cast<const std::uint8_t*>(t.data());
    const std::size_t n = static_cast<std::size_t>(t.numel()) * sizeof(T);
    if constexpr (detail::kLittleEndianHost || sizeof(T) == 1) {
      return write_bytes(raw, n, f, out);
    } else {
      using U = std::conditional_t<sizeof(T) == 8, std::uint64_t, std::uint32_t>;
      std::vector<std::uint8_t> le(n);
      for (Index i = 0; i < t.numel(); ++i)
        detail::store_le<U>(le.data() + sizeof(T) * i, detail::bit_cast<U>(t.data()[i]));
      return write_bytes(le.data(), n, f, out);
    }
  }

  void check_name(const std::string& name) const {
    using detail::concat;
    if (name == "__metadata__")
      throw IoError("safetensors Writer::add: '__metadata__' is reserved for metadata, expected a tensor name");
    if (!detail::is_valid_utf8(name))
      throw IoError(concat("safetensors Writer::add: tensor name ", detail::quote_name(name), " is not valid UTF-8"));
    if (names_.count(name))
      throw IoError(concat("safetensors Writer::add: duplicate tensor name ", detail::quote_name(name)));
  }
  void push(Entry e) {
    names_.insert(e.name);
    entries_.push_back(std::move(e));
  }

  /// The reference serializer's order: decreasing alignment (its dtype enum order), then name.
  std::vector<const Entry*> ordered() const {
    // Indexed by DType (F16, BF16, F32, F64, I32, I64, U8, BOOL): position in the reference's Dtype enum.
    static constexpr int kRank[] = {2, 3, 5, 6, 4, 7, 1, 0};
    const auto rank = [](DType d) { return kRank[static_cast<int>(d)]; };
    std::vector<const Entry*> order;
    for (const Entry& e : entries_) order.push_back(&e);
    std::sort(order.begin(), order.end(), [&](const Entry* a, const Entry* b) {
      if (rank(a->dtype) != rank(b->dtype)) return rank(a->dtype) > rank(b->dtype);
      return a->name < b->name;
    });
    return order;
  }

  /// The 8-byte length and the header, padded with spaces to a multiple of 8 bytes.
  std::vector<std::uint8_t> prefix_and_header(const std::vector<const Entry*>& order, const std::string& who) const {
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata_.empty()) {
      nlohmann::ordered_json meta = nlohmann::ordered_json::object();
      for (const auto& [k, v] : metadata_) meta[k] = v;
      header["__metadata__"] = std::move(meta);
    }
    std::size_t offset = 0;
    for (const Entry* e : order) {
      nlohmann::ordered_json entry = nlohmann::ordered_json::object();
      entry["dtype"] = dtype_name(e->dtype);
      entry["shape"] = e->shape;
      entry["data_offsets"] = {offset, offset + e->nbytes};
      offset += e->nbytes;
      header[e->name] = std::move(entry);
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    if (text.size() > kMaxHeaderSize)
      throw IoError(
          detail::concat(who, ": header would be ", text.size(), " bytes, over the limit of ", kMaxHeaderSize));
    std::vector<std::uint8_t> out(8 + text.size());
    detail::store_le<std::uint64_t>(out.data(), text.size());
    std::memcpy(out.data() + 8, text.data(), text.size());
    return out;
  }

  std::vector<Entry> entries_;
  std::unordered_set<std::string> names_;
  Metadata metadata_;
};

/// Writes (name, tensor) pairs and metadata to path atomically; names must be unique. Throws IoError naming path.
template <typename T>
void save_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, Tensor<T>>>& tensors,
                      const Metadata& metadata = {}) {
  Writer w;
  for (const auto& [name, t] : tensors) w.add(name, t);
  w.set_metadata(metadata);
  w.write(path);
}

}  // namespace eigenformer::io
