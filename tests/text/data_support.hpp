// Helpers of the text tests that use data outside the repository (real vocabularies under data/, fetched by
// scripts/fetch_tokenizer_data.sh) and the committed parity fixture (tests/text/fixtures/tokenizer_parity.json).
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#ifndef EIGENFORMER_DATA_DIR
#define EIGENFORMER_DATA_DIR "data"
#endif
#ifndef EIGENFORMER_TEST_DATA_DIR
#define EIGENFORMER_TEST_DATA_DIR "tests"
#endif

namespace eigenformer::testing {

/// data/<relative>, the folder of fetched data.
inline std::filesystem::path data_path(const std::string& relative) {
  return std::filesystem::path(EIGENFORMER_DATA_DIR) / relative;
}

/// True when EIGENFORMER_REQUIRE_DATA=1: absent data then fails the tests that need it instead of skipping them.
inline bool data_required() {
  const char* v = std::getenv("EIGENFORMER_REQUIRE_DATA");
  return v && std::string(v) == "1";
}

/// The parsed parity fixture.
inline const nlohmann::json& parity_fixture() {
  static const nlohmann::json j = [] {
    const std::filesystem::path p =
        std::filesystem::path(EIGENFORMER_TEST_DATA_DIR) / "text" / "fixtures" / "tokenizer_parity.json";
    std::ifstream in(p, std::ios::binary);
    if (!in) return nlohmann::json();
    return nlohmann::json::parse(std::string(std::istreambuf_iterator<char>(in), {}));
  }();
  return j;
}

}  // namespace eigenformer::testing

/// Skips the test (or fails it under EIGENFORMER_REQUIRE_DATA=1) when data/<relative> is absent.
#define EIGENFORMER_NEED_DATA(relative)                                                                    \
  do {                                                                                                     \
    const std::filesystem::path need_data_path_ = ::eigenformer::testing::data_path(relative);             \
    if (!std::filesystem::exists(need_data_path_)) {                                                       \
      if (::eigenformer::testing::data_required())                                                         \
        FAIL() << need_data_path_.string() << " is missing and EIGENFORMER_REQUIRE_DATA=1: run "           \
               << "scripts/fetch_tokenizer_data.sh";                                                       \
      GTEST_SKIP() << need_data_path_.string() << " is missing: run scripts/fetch_tokenizer_data.sh";      \
    }                                                                                                      \
  } while (0)
