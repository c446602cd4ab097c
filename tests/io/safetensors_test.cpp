#include "eigenformer/io/safetensors.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include "support/test_support.hpp"

#ifndef EIGENFORMER_TEST_DATA_DIR
#define EIGENFORMER_TEST_DATA_DIR "."
#endif
#ifndef EIGENFORMER_TEST_TMP_DIR
#define EIGENFORMER_TEST_TMP_DIR "/tmp"
#endif

using namespace eigenformer;
using namespace eigenformer::io;

namespace safetensors_test {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

namespace {

/// A file made of the header text (its length written in the first 8 bytes) and data; declared_length overrides
/// the length field.
Bytes make_file(const std::string& header, const Bytes& data = {}, std::uint64_t declared_length = ~0ull) {
  Bytes out(8);
  const std::uint64_t n = declared_length == ~0ull ? header.size() : declared_length;
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

SafetensorsView parse_bad(const Bytes& b) { return SafetensorsView::parse(b.data(), b.size(), "bad.safetensors"); }

Bytes read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_all(const fs::path& p, const Bytes& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

/// A fresh, empty directory for one test.
fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::path(EIGENFORMER_TEST_TMP_DIR) / ("safetensors_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::size_t count_files(const fs::path& dir) {
  return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

Bytes u16_bytes(const std::vector<std::uint16_t>& v) {
  Bytes out;
  for (std::uint16_t x : v) {
    out.push_back(static_cast<std::uint8_t>(x & 0xff));
    out.push_back(static_cast<std::uint8_t>(x >> 8));
  }
  return out;
}

const std::string kW = R"("w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})";

}  // namespace

// ---- dtype decoding ---------------------------------------------------------------------------------------------

TEST(Safetensors, Float16DecodesKnownBitPatterns) {
  // (bits, value) pairs from torch: torch.tensor([bits], dtype=torch.int16).view(torch.float16).double().
  const std::vector<std::pair<std::uint16_t, double>> cases = {{0x0000, 0.0},
                                                               {0x3c00, 1.0},
                                                               {0xc000, -2.0},
                                                               {0x7bff, 65504.0},
                                                               {0x0400, 6.103515625e-05},
                                                               {0x0001, 5.960464477539063e-08},
                                                               {0x03ff, 6.097555160522461e-05},
                                                               {0x8001, -5.960464477539063e-08},
                                                               {0x3555, 0.333251953125}};
  for (const auto& [bits, value] : cases)
    EXPECT_EQ(static_cast<double>(io::detail::half_to_float(bits)), value) << std::hex << bits;
  EXPECT_TRUE(std::signbit(io::detail::half_to_float(0x8000)));
  EXPECT_EQ(io::detail::half_to_float(0x8000), 0.0f);
  EXPECT_EQ(io::detail::half_to_float(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(io::detail::half_to_float(0xfc00), -std::numeric_limits<float>::infinity());
  for (std::uint16_t nan : {0x7e00, 0x7c01, 0xfe00}) EXPECT_TRUE(std::isnan(io::detail::half_to_float(nan)));
  EXPECT_TRUE(std::signbit(io::detail::half_to_float(0xfe00)));
}

TEST(Safetensors, Float16DecodingIsExactForEveryBitPattern) {
  // Independent formula: (-1)^s * 2^(e-15) * (1 + m/1024) for normals, (-1)^s * m * 2^-24 for subnormals.
  for (std::uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const auto h = static_cast<std::uint16_t>(bits);
    const int s = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    const float got = io::detail::half_to_float(h);
    if (e == 31) {
      if (m == 0)
        EXPECT_TRUE(std::isinf(got)) << bits;
      else
        EXPECT_TRUE(std::isnan(got)) << bits;
      EXPECT_EQ(std::signbit(got), s == 1) << bits;
      continue;
    }
    const double magnitude = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
    const double want = s ? -magnitude : magnitude;
    ASSERT_EQ(static_cast<double>(got), want) << bits;
    ASSERT_EQ(std::signbit(got), s == 1) << bits;
  }
}

TEST(Safetensors, BFloat16DecodesKnownBitPatterns) {
  const std::vector<std::pair<std::uint16_t, double>> cases = {{0x0000, 0.0},
                                                               {0x3f80, 1.0},
                                                               {0x4049, 3.140625},
                                                               {0x0001, 9.183549615799121e-41},
                                                               {0x807f, -1.1663108012064884e-38},
                                                               {0x7f7f, 3.3895313892515355e+38},
                                                               {0x0080, 1.1754943508222875e-38}};
  for (const auto& [bits, value] : cases)
    EXPECT_EQ(static_cast<double>(io::detail::bfloat16_to_float(bits)), value) << std::hex << bits;
  EXPECT_TRUE(std::signbit(io::detail::bfloat16_to_float(0x8000)));
  EXPECT_EQ(io::detail::bfloat16_to_float(0x7f80), std::numeric_limits<float>::infinity());
  EXPECT_EQ(io::detail::bfloat16_to_float(0xff80), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(io::detail::bfloat16_to_float(0x7fc0)));
}

TEST(Safetensors, HalfAndBFloat16TensorsConvertToFloatAndDouble) {
  Writer w;
  w.add_bytes("h", DType::F16, {2, 2}, u16_bytes({0x3c00, 0x0001, 0xfc00, 0x7e00}));
  w.add_bytes("b", DType::BF16, {3}, u16_bytes({0x4049, 0x0001, 0x8000}));
  const Bytes file = w.serialize();
  const SafetensorsView v = SafetensorsView::parse(file.data(), file.size(), "mem");
  const Tensor<double> h = v.get<double>("h");
  EXPECT_EQ(h.shape(), (Shape{2, 2}));
  EXPECT_EQ(h[0], 1.0);
  EXPECT_EQ(h[1], 5.960464477539063e-08);
  EXPECT_EQ(h[2], -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(h[3]));
  const Tensor<float> b = v.get<float>("b");
  EXPECT_EQ(b[0], 3.140625f);
  EXPECT_EQ(static_cast<double>(b[1]), 9.183549615799121e-41);
  EXPECT_TRUE(std::signbit(b[2]));
  EXPECT_EQ(v.info("h").dtype, DType::F16);
  EXPECT_EQ(v.info("b").end - v.info("b").begin, 6u);
}

// ---- round trips ------------------------------------------------------------------------------------------------

TEST(Safetensors, EveryWritableDtypeRoundTripsThroughAFile) {
  const fs::path dir = fresh_dir("round_trip");
  const Tensor<float> f32 = Tensor<float>::from({0.1f, -2.5f, 3e38f, -0.0f, 1e-45f, 7.0f}, {2, 3});
  const Tensor<double> f64 = Tensor<double>::from({1.0 / 3.0, -1e-300, 1e308}, {3});
  const Tensor<std::int64_t> i64 = Tensor<std::int64_t>::from(
      {std::numeric_limits<std::int64_t>::min(), -1, 0, 101, 2023, std::numeric_limits<std::int64_t>::max()}, {3, 2});
  const Tensor<std::int32_t> i32 = Tensor<std::int32_t>::from({std::numeric_limits<std::int32_t>::min(), 5}, {2});
  const Tensor<std::uint8_t> u8 = Tensor<std::uint8_t>::from({0, 128, 255}, {1, 3});
  const Tensor<bool> mask = Tensor<bool>::from({true, false, false, true}, {2, 2});
  const Tensor<float> scalar = Tensor<float>::scalar(42.5f);
  const Tensor<float> empty = Tensor<float>::zeros({0, 3});

  Writer w;
  w.add("f32", f32).add("f64", f64).add("i64", i64).add("i32", i32).add("u8", u8).add("mask", mask);
  w.add("scalar", scalar).add("empty", empty).set_metadata("format", "pt").set_metadata("note", "héllo ✓");
  w.write(dir / "all.safetensors");

  const SafetensorsFile file = read_safetensors(dir / "all.safetensors");
  EXPECT_EQ(file.source_name(), (dir / "all.safetensors").string());
  EXPECT_EQ(file.tensors().size(), 8u);
  EXPECT_TRUE(file.get<float>("f32").equal(f32));
  EXPECT_TRUE(std::signbit(file.get<float>("f32")[3]));
  EXPECT_TRUE(file.get<double>("f64").equal(f64));
  EXPECT_TRUE(file.get<double>("f32").equal(f32.cast<double>()));
  EXPECT_TRUE(file.get<std::int64_t>("i64").equal(i64));
  EXPECT_TRUE(file.get<std::int64_t>("i32").equal(i32.cast<std::int64_t>()));
  EXPECT_TRUE(file.get<std::int64_t>("u8").equal(u8.cast<std::int64_t>()));
  EXPECT_TRUE(file.get<bool>("mask").equal(mask));
  EXPECT_TRUE(file.get<std::int64_t>("mask").equal(Tensor<std::int64_t>::from({1, 0, 0, 1}, {2, 2})));
  EXPECT_EQ(file.get<float>("scalar").dim(), 0);
  EXPECT_EQ(file.get<float>("scalar").item(), 42.5f);
  EXPECT_EQ(file.get<float>("empty").shape(), (Shape{0, 3}));
  EXPECT_EQ(file.info("f32").dtype, DType::F32);
  EXPECT_EQ(file.info("f64").dtype, DType::F64);
  EXPECT_EQ(file.info("i64").dtype, DType::I64);
  EXPECT_EQ(file.info("i32").dtype, DType::I32);
  EXPECT_EQ(file.info("u8").dtype, DType::U8);
  EXPECT_EQ(file.info("mask").dtype, DType::BOOL);
  EXPECT_EQ(file.metadata(), (Metadata{{"format", "pt"}, {"note", "héllo ✓"}}));
  EXPECT_EQ(count_files(dir), 1u);  // no temporary file left behind

  // The file outlives copies of its handle (the bytes are shared).
  SafetensorsFile copy = file;
  EXPECT_TRUE(copy.get<float>("f32").equal(f32));
}

TEST(Safetensors, SaveSafetensorsWritesFloatAndDoubleLists) {
  const fs::path dir = fresh_dir("save_list");
  const Tensor<float> a = eigenformer::testing::random_tensor({3, 4}, 7);
  save_safetensors(dir / "f.safetensors", std::vector<std::pair<std::string, Tensor<float>>>{{"a", a}}, {{"k", "v"}});
  const SafetensorsFile f = read_safetensors(dir / "f.safetensors");
  EXPECT_TRUE(f.get<float>("a").equal(a));
  EXPECT_EQ(f.metadata().at("k"), "v");

  const Tensor<double> b = eigenformer::testing::random_var({5}, 8).value();
  save_safetensors(dir / "d.safetensors", std::vector<std::pair<std::string, Tensor<double>>>{{"b", b}, {"c", b}});
  const SafetensorsFile d = read_safetensors(dir / "d.safetensors");
  EXPECT_TRUE(d.get<double>("b").equal(b));
  EXPECT_TRUE(d.get<double>("c").equal(b));
  EXPECT_TRUE(d.metadata().empty());
}

TEST(Safetensors, WriterOutputIsByteIdenticalToTheReferenceSerializer) {
  // Expected bytes of the reference Rust crate's own tests (test_serialization, test_empty).
  Writer w;
  w.add("attn.0", Tensor<float>::from({0, 1, 2, 3, 4, 5}, {1, 2, 3}));
  const std::string header = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
  const Bytes data = {0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64};
  EXPECT_EQ(w.serialize(), make_file(header, data));

  EXPECT_EQ(Writer().serialize(), make_file("{}      "));
  EXPECT_EQ(Writer().set_metadata("framework", "pt").serialize(),
            make_file(R"({"__metadata__":{"framework":"pt"}}     )"));
}

TEST(Safetensors, WriterOrdersByAlignmentThenNameAndPadsToEightBytes) {
  Writer w;
  w.add("z", Tensor<bool>::from({true}, {1}));
  w.add("b", Tensor<float>::from({1.0f}, {1}));
  w.add("a", Tensor<float>::from({2.0f}, {1}));
  w.add("ids", Tensor<std::int64_t>::from({7}, {1}));
  const Bytes file = w.serialize();
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file[static_cast<std::size_t>(i)];
  EXPECT_EQ(n % 8, 0u);
  const std::string header(file.begin() + 8, file.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  EXPECT_LT(header.find("\"ids\""), header.find("\"a\""));
  EXPECT_LT(header.find("\"a\""), header.find("\"b\""));
  EXPECT_LT(header.find("\"b\""), header.find("\"z\""));
  const SafetensorsView v = SafetensorsView::parse(file.data(), file.size(), "mem");
  std::vector<std::string> names;
  for (const TensorInfo& t : v.tensors()) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"ids", "a", "b", "z"}));  // offset order
  EXPECT_EQ(v.info("ids").begin, 0u);
  EXPECT_EQ(v.info("z").end, 17u);
}

TEST(Safetensors, ReadsTensorsInOffsetOrderWhateverTheHeaderOrder) {
  const std::string header = R"({"second":{"dtype":"U8","shape":[2],"data_offsets":[3,5]},)"
                             R"("first":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}})";
  const Bytes file = make_file(header, {1, 2, 3, 4, 5});
  const SafetensorsView v = SafetensorsView::parse(file.data(), file.size(), "mem");
  ASSERT_EQ(v.tensors().size(), 2u);
  EXPECT_EQ(v.tensors()[0].name, "first");
  EXPECT_TRUE(v.get<std::int64_t>("second").equal(Tensor<std::int64_t>::from({4, 5}, {2})));
}

TEST(Safetensors, AcceptsWhatTheFormatAllows) {
  // Trailing whitespace padding, no metadata, null metadata, unknown fields (ignored, as the reference does),
  // zero-size tensors sharing an offset, rank-0 tensors.
  const std::vector<std::string> ok = {
      "{}",
      "{}      ",
      "{}\n\t\r ",
      R"({"__metadata__":null})",
      R"({"__metadata__":{}})",
      R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0],"extra":{"x":[1,[2,{"y":null}]]}},)"
      R"("b":{"shape":[0,5],"dtype":"F64","data_offsets":[0,0]}})",
      R"({"s":{"dtype":"I32","shape":[],"data_offsets":[0,4]}})"};
  for (const std::string& h : ok) {
    const Bytes file = make_file(h, h.find("\"s\"") != std::string::npos ? Bytes{1, 0, 0, 0} : Bytes{});
    EXPECT_NO_THROW(SafetensorsView::parse(file.data(), file.size(), "ok.safetensors")) << h;
  }
  const Bytes s = make_file(ok.back(), {0xfe, 0xff, 0xff, 0xff});
  EXPECT_EQ(SafetensorsView::parse(s.data(), s.size(), "mem").get<std::int64_t>("s").item(), -2);
}

TEST(Safetensors, ReadsTheFileWrittenByPython) {
  // tests/io/data/make_python_written.py: tensors from PyTorch, layout written with struct + json.
  const SafetensorsFile f =
      read_safetensors(fs::path(EIGENFORMER_TEST_DATA_DIR) / "io/data/python_written.safetensors");
  EXPECT_EQ(f.metadata(), (Metadata{{"format", "pt"}, {"producer", "make_python_written.py"}}));
  EXPECT_EQ(f.tensors().size(), 10u);
  EXPECT_TRUE(
      f.get<float>("encoder.weight").equal(Tensor<float>::from({0.1f, -2.5f, 3.0f, 0.001f, 65504.0f, -0.0f}, {2, 3})));
  EXPECT_TRUE(f.get<double>("encoder.bias").equal(Tensor<double>::from({0.3333333333333333, -1e-300, 2.5}, {3})));
  const Tensor<double> half = f.get<double>("half");
  const std::vector<double> half_want = {
      1.0, -2.0, 65504.0, 6.103515625e-05, 5.960464477539063e-08, 6.097555160522461e-05, 0.0999755859375, -0.0};
  ASSERT_EQ(half.shape(), (Shape{11}));
  for (std::size_t i = 0; i < half_want.size(); ++i) EXPECT_EQ(half[static_cast<Index>(i)], half_want[i]) << i;
  EXPECT_TRUE(std::signbit(half[7]));
  EXPECT_EQ(half[8], std::numeric_limits<double>::infinity());
  EXPECT_EQ(half[9], -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(half[10]));
  EXPECT_TRUE(f.get<double>("bf16").equal(Tensor<double>::from(
      {3.140625, -9.183549615799121e-41, 3.3895313892515355e+38, -std::numeric_limits<double>::infinity()}, {2, 2})));
  EXPECT_TRUE(f.get<std::int64_t>("ids").equal(Tensor<std::int64_t>::from(
      {101, 2023, -1, 0, std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::min()}, {2, 3})));
  EXPECT_TRUE(f.get<std::int64_t>("ids32").equal(Tensor<std::int64_t>::from({1, -2, 2147483647, -2147483648LL}, {4})));
  EXPECT_TRUE(f.get<std::int64_t>("bytes").equal(Tensor<std::int64_t>::from({0, 7, 255}, {3})));
  EXPECT_TRUE(f.get<bool>("mask").equal(Tensor<bool>::from({true, false, false, true}, {2, 2})));
  EXPECT_EQ(f.get<float>("scalar").dim(), 0);
  EXPECT_EQ(f.get<float>("scalar").item(), 42.5f);
  EXPECT_EQ(f.get<float>("empty").shape(), (Shape{0, 3}));

  // Our writer reproduces the Python-written file byte for byte (same order, same padding).
  Writer w;
  for (const TensorInfo& t : f.tensors())
    w.add_bytes(t.name, t.dtype, t.shape, Bytes(f.bytes(t), f.bytes(t) + (t.end - t.begin)));
  w.set_metadata(f.metadata());
  EXPECT_EQ(w.serialize(), read_all(fs::path(EIGENFORMER_TEST_DATA_DIR) / "io/data/python_written.safetensors"));
}

// ---- malformed files --------------------------------------------------------------------------------------------

TEST(Safetensors, RejectsTruncatedFiles) {
  EXPECT_THROW_WITH(parse_bad(Bytes{1, 0, 0, 0, 0}), IoError, {"bad.safetensors", "5 bytes", "at least 8"});
  const Bytes full = make_file("{" + kW + "}", Bytes(16, 0));
  const Bytes header_cut(full.begin(), full.begin() + 20);
  EXPECT_THROW_WITH(parse_bad(header_cut), IoError, {"bad.safetensors", "runs past the end of the file"});
  const Bytes data_cut(full.begin(), full.end() - 6);
  EXPECT_THROW_WITH(parse_bad(data_cut), IoError, {"bad.safetensors", "tensor 'w'", "run past the end", "10 bytes"});
}

TEST(Safetensors, RejectsHeaderLengthsBeforeAllocating) {
  // 2^60 would be a huge allocation if trusted; 99,999,999 is under the limit but past the end of the file.
  EXPECT_THROW_WITH(parse_bad(make_file("{}", {}, 1ull << 60)), IoError,
                    {"bad.safetensors", "header length 1152921504606846976", "exceeds the limit of 100000000"});
  EXPECT_THROW_WITH(parse_bad(make_file("{}", {}, ~0ull - 1)), IoError, {"bad.safetensors", "exceeds the limit"});
  EXPECT_THROW_WITH(parse_bad(make_file("{}", {}, 99999999)), IoError,
                    {"bad.safetensors", "header length 99999999 runs past the end", "file is 10 bytes"});
  EXPECT_THROW_WITH(parse_bad(make_file("{}", {}, 3)), IoError, {"bad.safetensors", "runs past the end"});

  const fs::path dir = fresh_dir("huge_header");
  write_all(dir / "huge.safetensors", make_file("{}", {}, 1ull << 60));
  EXPECT_THROW_WITH(read_safetensors(dir / "huge.safetensors"), IoError, {"huge.safetensors", "exceeds the limit"});
  write_all(dir / "past.safetensors", make_file("{}", {}, 99999999));
  EXPECT_THROW_WITH(read_safetensors(dir / "past.safetensors"), IoError, {"past.safetensors", "runs past the end"});
  write_all(dir / "short.safetensors", Bytes{8, 0, 0});
  EXPECT_THROW_WITH(read_safetensors(dir / "short.safetensors"), IoError, {"short.safetensors", "3 bytes"});
}

TEST(Safetensors, RejectsBadOffsets) {
  const auto entry = [](const char* name, const char* offsets) {
    return std::string("\"") + name + R"(":{"dtype":"F32","shape":[4],"data_offsets":)" + offsets + "}";
  };
  EXPECT_THROW_WITH(parse_bad(make_file("{" + entry("a", "[0,16]") + "," + entry("b", "[8,24]") + "}", Bytes(24))),
                    IoError, {"bad.safetensors", "tensor 'b'", "overlap tensor 'a'", "[8, 24]", "expected begin 16"});
  EXPECT_THROW_WITH(parse_bad(make_file("{" + entry("a", "[0,16]") + "," + entry("b", "[20,36]") + "}", Bytes(36))),
                    IoError, {"bad.safetensors", "tensor 'b'", "gap of 4 bytes", "expected begin 16"});
  EXPECT_THROW_WITH(parse_bad(make_file("{" + entry("a", "[4,20]") + "}", Bytes(20))), IoError,
                    {"bad.safetensors", "tensor 'a'", "do not start at 0"});
  EXPECT_THROW_WITH(parse_bad(make_file("{" + entry("a", "[0,16]") + "}", Bytes(20))), IoError,
                    {"bad.safetensors", "4 trailing bytes", "end at data offset 16"});
  EXPECT_THROW_WITH(parse_bad(make_file("{}", Bytes(3))), IoError, {"bad.safetensors", "3 trailing bytes"});
  EXPECT_THROW_WITH(
      parse_bad(make_file("{" + entry("a", "[0,16]") + R"(,"b":{"dtype":"U8","shape":[0],"data_offsets":[16,8]}})",
                          Bytes(16))),
      IoError, {"bad.safetensors", "tensor 'b'", "end before they begin"});
  EXPECT_THROW_WITH(parse_bad(make_file(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", Bytes(12))),
                    IoError, {"bad.safetensors", "tensor 'a'", "span 12 bytes, expected 16", "F32 (2, 2)"});
  EXPECT_THROW_WITH(parse_bad(make_file(R"({"a":{"dtype":"F64","shape":[3],"data_offsets":[0,12]}})", Bytes(12))),
                    IoError, {"tensor 'a'", "expected 24"});
}

TEST(Safetensors, RejectsBadEntries) {
  const auto bad = [](const std::string& header) { return parse_bad(make_file(header, Bytes(16))); };
  EXPECT_THROW_WITH(bad(R"({"w":{"dtype":"F33","shape":[4],"data_offsets":[0,16]}})"), IoError,
                    {"bad.safetensors", "tensor 'w'", "unknown dtype 'F33'", "expected one of"});
  EXPECT_THROW_WITH(bad(R"({"w":{"dtype":"I8","shape":[16],"data_offsets":[0,16]}})"), IoError,
                    {"tensor 'w'", "dtype 'I8' is not supported"});
  EXPECT_THROW_WITH(bad(R"({"w":{"dtype":3,"shape":[4],"data_offsets":[0,16]}})"), IoError,
                    {"tensor 'w'", "dtype is a number"});
  EXPECT_THROW_WITH(bad(R"({"w":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,16]}})"), IoError,
                    {"bad.safetensors", "tensor 'w'", "shape holds -1", "non-negative integers"});
  EXPECT_THROW_WITH(bad(R"({"w":{"dtype":"F32","shape":[2.0,2],"data_offsets":[0,16]}})"), IoError,
                    {"bad.safetensors", "tensor 'w'", "shape holds 2.0"});
  EXPECT_THROW_WITH(bad(R"({"w":{"dtype":"F32","shape":[2,"2"],"data_offsets":[0,16]}})"), IoError,
                    {"tensor 'w'", "shape holds a string"});
  EXPECT_THROW_WITH(bad(R"({"w":{"dtype":"F32","shape":4,"data_offsets":[0,16]}})"), IoError,
                    {"tensor 'w'", "shape is a number"});
  EXPECT_THROW_WITH(bad(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16,32]}})"), IoError,
                    {"tensor 'w'", "more than 2 entries"});
  EXPECT_THROW_WITH(bad(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[16]}})"), IoError,
                    {"tensor 'w'", "data_offsets has 1 entries"});
  EXPECT_THROW_WITH(bad(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[-1,16]}})"), IoError,
                    {"tensor 'w'", "data_offsets holds -1"});
  EXPECT_THROW_WITH(bad(R"({"w":{"dtype":"F32","shape":[4]}})"), IoError, {"tensor 'w'", "no 'data_offsets'"});
  EXPECT_THROW_WITH(bad(R"({"w":{"shape":[4],"data_offsets":[0,16]}})"), IoError, {"tensor 'w'", "no 'dtype'"});
  EXPECT_THROW_WITH(bad(R"({"w":{"dtype":"F32","data_offsets":[0,16]}})"), IoError, {"tensor 'w'", "no 'shape'"});
  EXPECT_THROW_WITH(bad(R"({"w":{"dtype":"F32","dtype":"F32","shape":[4],"data_offsets":[0,16]}})"), IoError,
                    {"tensor 'w'", "duplicate field 'dtype'"});
  EXPECT_THROW_WITH(bad(R"({"w":[1,2]})"), IoError, {"bad.safetensors", "tensor 'w'", "entry is an array"});
  EXPECT_THROW_WITH(bad(R"({"w":3})"), IoError, {"tensor 'w'", "entry is a number"});
  EXPECT_THROW_WITH(bad("{" + kW + "," + kW + "}"), IoError, {"bad.safetensors", "duplicate key 'w'"});
  EXPECT_THROW_WITH(bad(R"({"__metadata__":{"a":1}})"), IoError, {"__metadata__ value of 'a' is a number"});
  EXPECT_THROW_WITH(bad(R"({"__metadata__":{"a":"x","a":"y"}})"), IoError, {"duplicate key 'a' in __metadata__"});
  EXPECT_THROW_WITH(bad(R"({"__metadata__":["a"]})"), IoError, {"__metadata__ is an array"});
}

TEST(Safetensors, RejectsHeadersThatAreNotAJsonObject) {
  const auto bad = [](const std::string& header) { return parse_bad(make_file(header)); };
  EXPECT_THROW_WITH(bad("[1, 2]"), IoError, {"bad.safetensors", "does not start with '{'"});
  EXPECT_THROW_WITH(bad(" {}"), IoError, {"does not start with '{'"});
  EXPECT_THROW_WITH(bad(""), IoError, {"does not start with '{'"});
  EXPECT_THROW_WITH(bad("\"text\""), IoError, {"does not start with '{'"});
  EXPECT_THROW_WITH(bad(R"({"w": {"dtype": )"), IoError, {"bad.safetensors", "header is not valid JSON"});
  EXPECT_THROW_WITH(bad("{} {}"), IoError, {"header is not valid JSON"});
  EXPECT_THROW_WITH(bad("{}xyz"), IoError, {"header is not valid JSON"});
  EXPECT_THROW_WITH(bad("{\"a\xff\":1}"), IoError, {"header is not valid JSON"});    // not UTF-8
  EXPECT_THROW_WITH(bad("{\"\\ud800\":1}"), IoError, {"header is not valid JSON"});  // lone surrogate
  EXPECT_THROW_WITH(bad("{/* c */}"), IoError, {"header is not valid JSON"});
  EXPECT_THROW_WITH(bad(std::string("{}\0", 3)), IoError, {"header is not valid JSON"});
}

TEST(Safetensors, RejectsShapesWhoseSizeOverflows) {
  const auto bad = [](const std::string& shape) {
    return parse_bad(make_file(R"({"w":{"dtype":"F32","shape":)" + shape + R"(,"data_offsets":[0,16]}})", Bytes(16)));
  };
  EXPECT_THROW_WITH(bad("[4294967296,4294967296,16]"), IoError, {"bad.safetensors", "tensor 'w'", "overflows"});
  EXPECT_THROW_WITH(bad("[4611686018427387904,4]"), IoError, {"tensor 'w'", "overflows"});
  EXPECT_THROW_WITH(bad("[4611686018427387904]"), IoError, {"tensor 'w'", "overflows"});  // * 4 bytes
  EXPECT_THROW_WITH(bad("[9223372036854775808]"), IoError, {"tensor 'w'", "too large"});
  EXPECT_THROW_WITH(bad("[18446744073709551616]"), IoError, {"tensor 'w'", "shape holds 18446744073709551616"});
  // A zero does not excuse the rest: eigenformer multiplies shapes in Index (stricter than the reference).
  EXPECT_THROW_WITH(bad("[4294967296,4294967296,0]"), IoError, {"tensor 'w'", "overflows"});
}

TEST(Safetensors, ConversionsThatCannotHappenThrowNamingTheTensor) {
  Writer w;
  w.add("ids", Tensor<std::int64_t>::from({1, 2}, {2}));
  w.add("x", Tensor<float>::from({1.5f}, {1}));
  w.add_bytes("flags", DType::U8, {3}, {0, 1, 2});
  w.add_bytes("mask", DType::BOOL, {2}, {1, 2});
  w.add("bits", Tensor<std::int32_t>::from({0, 1}, {2}));
  const Bytes file = w.serialize();
  const SafetensorsView v = SafetensorsView::parse(file.data(), file.size(), "conv.safetensors");
  EXPECT_THROW_WITH(v.get<float>("ids"), IoError, {"conv.safetensors", "tensor 'ids'", "I64 cannot be read as float"});
  EXPECT_THROW_WITH(v.get<double>("mask"), IoError, {"tensor 'mask'", "BOOL cannot be read as double"});
  EXPECT_THROW_WITH(v.get<std::int64_t>("x"), IoError, {"tensor 'x'", "F32 cannot be read as int64"});
  EXPECT_THROW_WITH(v.get<bool>("x"), IoError, {"tensor 'x'", "F32 cannot be read as bool"});
  EXPECT_THROW_WITH(v.get<bool>("flags"), IoError, {"tensor 'flags'", "element 2 is 2", "expected 0 or 1"});
  EXPECT_THROW_WITH(v.get<bool>("mask"), IoError, {"tensor 'mask'", "element 1 is 2"});
  EXPECT_THROW_WITH(v.get<std::int64_t>("mask"), IoError, {"tensor 'mask'", "BOOL element 1 is 2"});
  EXPECT_THROW_WITH(v.get<float>("nope"), IoError, {"conv.safetensors", "no tensor named 'nope'"});
  EXPECT_THROW_WITH(v.get<bool>("ids"), IoError, {"tensor 'ids'", "element 1 is 2"});
  EXPECT_TRUE(v.get<bool>("bits").equal(Tensor<bool>::from({false, true}, {2})));
}

// ---- writer errors and atomic saves -----------------------------------------------------------------------------

TEST(Safetensors, WriterRejectsBadNamesAndTensors) {
  Writer w;
  w.add("a", Tensor<float>::zeros({2}));
  EXPECT_THROW_WITH(w.add("a", Tensor<double>::zeros({1})), IoError, {"Writer::add", "duplicate tensor name 'a'"});
  EXPECT_THROW_WITH(w.add("__metadata__", Tensor<float>::zeros({1})), IoError, {"'__metadata__' is reserved"});
  EXPECT_THROW_WITH(w.add("bad\xff", Tensor<float>::zeros({1})), IoError, {"not valid UTF-8"});
  EXPECT_THROW_WITH(w.add("u", Tensor<float>()), IoError, {"tensor 'u' is undefined"});
  EXPECT_THROW_WITH(w.add_bytes("h", DType::F16, {3}, Bytes(4)), IoError,
                    {"Writer::add_bytes", "tensor 'h' has 4 bytes, expected 6", "F16 (3)"});
  EXPECT_THROW_WITH(w.set_metadata("k", "\xc0\x80"), IoError, {"set_metadata", "not valid UTF-8"});
  EXPECT_THROW_WITH(save_safetensors("x.safetensors",
                                     std::vector<std::pair<std::string, Tensor<float>>>{
                                         {"a", Tensor<float>::zeros({1})}, {"a", Tensor<float>::zeros({1})}}),
                    IoError, {"duplicate tensor name 'a'"});
  EXPECT_FALSE(fs::exists("x.safetensors"));
}

TEST(Safetensors, ReadErrorsNameThePath) {
  const fs::path dir = fresh_dir("read_errors");
  EXPECT_THROW_WITH(read_safetensors(dir / "missing.safetensors"), IoError, {"missing.safetensors", "cannot read"});
  EXPECT_THROW_WITH(read_safetensors(dir), IoError, {dir.string(), "is a directory"});
  write_all(dir / "bad.safetensors", make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", Bytes(4)));
  EXPECT_THROW_WITH(read_safetensors(dir / "bad.safetensors"), IoError,
                    {(dir / "bad.safetensors").string(), "tensor 'w'", "expected 8"});
}

TEST(Safetensors, FailedSaveToAMissingDirectoryNamesThePath) {
  const fs::path dir = fresh_dir("missing_dir");
  const fs::path target = dir / "no" / "such" / "w.safetensors";
  Writer w;
  w.add("a", Tensor<float>::zeros({2}));
  EXPECT_THROW_WITH(w.write(target), IoError, {"save_safetensors", target.string()});
  EXPECT_EQ(count_files(dir), 0u);
}

TEST(Safetensors, FailedRenameLeavesTheTargetAndNoTemporaryFile) {
  // The target is a non-empty directory: the temporary file is written, the rename fails.
  const fs::path dir = fresh_dir("rename_fails");
  fs::create_directories(dir / "target.safetensors" / "inside");
  Writer w;
  w.add("a", Tensor<float>::zeros({2}));
  EXPECT_THROW_WITH(w.write(dir / "target.safetensors"), IoError, {"target.safetensors", "previous file is unchanged"});
  EXPECT_TRUE(fs::is_directory(dir / "target.safetensors" / "inside"));
  EXPECT_EQ(count_files(dir), 1u);
}

#if defined(__unix__) || defined(__APPLE__)
TEST(Safetensors, FailedWriteLeavesTheOldFileByteIdentical) {
  const fs::path dir = fresh_dir("write_fails");
  const fs::path target = dir / "model.safetensors";
  Writer small;
  small.add("w", eigenformer::testing::random_tensor({4}, 3)).set_metadata("version", "1");
  small.write(target);
  const Bytes before = read_all(target);
  ASSERT_GT(before.size(), 0u);

  // A file-size limit makes the write fail midway (EFBIG), as a full disk would; root ignores permissions, not
  // this limit. SIGXFSZ is ignored so the failure arrives as an error code.
  Writer big;
  big.add("w", eigenformer::testing::random_tensor({64, 1024}, 4));
  struct rlimit old_limit {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  struct rlimit limit = old_limit;
  limit.rlim_cur = 4096;
  void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limit), 0);
  bool threw = false;
  std::string message;
  try {
    big.write(target);
  } catch (const IoError& e) {
    threw = true;
    message = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old_limit);
  signal(SIGXFSZ, old_handler);
  EXPECT_TRUE(threw);
  EXPECT_NE(message.find(target.string()), std::string::npos) << message;
  EXPECT_EQ(read_all(target), before);
  EXPECT_EQ(count_files(dir), 1u);  // the temporary file was removed
  EXPECT_TRUE(read_safetensors(target).get<float>("w").equal(eigenformer::testing::random_tensor({4}, 3)));
}

TEST(Safetensors, FailedSaveIntoAReadOnlyDirectoryLeavesTheOldFile) {
  if (geteuid() == 0) GTEST_SKIP() << "root writes into read-only directories; the file-size test covers this";
  const fs::path dir = fresh_dir("read_only");
  const fs::path target = dir / "model.safetensors";
  Writer w;
  w.add("w", Tensor<float>::ones({3}));
  w.write(target);
  const Bytes before = read_all(target);
  fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec);
  EXPECT_THROW_WITH(Writer().add("w", Tensor<float>::zeros({3})).write(target), IoError, {target.string()});
  fs::permissions(dir, fs::perms::owner_all);
  EXPECT_EQ(read_all(target), before);
}
#endif

}  // namespace safetensors_test
