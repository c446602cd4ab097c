// ByteLevel alphabet: GPT-2's reversible map of the 256 byte values to printable code points (bytes_to_unicode
// in openai/gpt-2 encoder.py; Hugging Face tokenizers' ByteLevel pre-tokenizer and decoder). Bytes 33-126, 161-172
// and 174-255 stand for themselves; the other 68 (controls, space, DEL, NBSP, soft hyphen) become U+0100 onwards
// in byte order. Any byte string thus becomes a string of visible characters that vocab.json and merges.txt can
// hold, and back.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "eigenformer/text/unicode.hpp"

namespace eigenformer::text {

namespace detail {

constexpr bool byte_stands_for_itself(int b) {
  return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

constexpr std::array<char32_t, 256> make_byte_to_char() {
  std::array<char32_t, 256> t{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) t[static_cast<std::size_t>(b)] = byte_stands_for_itself(b) ? char32_t(b) : next++;
  return t;
}

/// The code point of each byte.
inline constexpr std::array<char32_t, 256> kByteToChar = make_byte_to_char();

/// The inverse of kByteToChar over U+0000..U+01FF (every image is below U+0144): the byte, or -1.
constexpr std::array<std::int16_t, 512> make_char_to_byte() {
  std::array<std::int16_t, 512> t{};
  for (auto& v : t) v = -1;
  for (int b = 0; b < 256; ++b) t[kByteToChar[static_cast<std::size_t>(b)]] = static_cast<std::int16_t>(b);
  return t;
}
inline constexpr std::array<std::int16_t, 512> kCharToByte = make_char_to_byte();

}  // namespace detail

/// The code point that stands for byte b.
constexpr char32_t byte_level_char(unsigned char b) noexcept { return detail::kByteToChar[b]; }

/// The byte that code point c stands for, or -1 when c is not in the alphabet.
constexpr int byte_level_byte(char32_t c) noexcept {
  return c < detail::kCharToByte.size() ? detail::kCharToByte[c] : -1;
}

/// Appends the byte-level form of bytes (any bytes, valid UTF-8 or not) to out, as UTF-8.
inline void append_byte_level(std::string& out, std::string_view bytes) {
  for (const char c : bytes) append_utf8(out, byte_level_char(static_cast<unsigned char>(c)));
}

/// The byte-level form of bytes, as UTF-8: "Hello world" -> "HelloĠworld".
inline std::string to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() + bytes.size() / 4);
  append_byte_level(out, bytes);
  return out;
}

/// Appends the bytes a byte-level string stands for to out; returns false (out then unchanged) when text holds a
/// character outside the alphabet or is not valid UTF-8.
inline bool append_from_byte_level(std::string& out, std::string_view text) {
  const std::size_t mark = out.size();
  const char* p = text.data();
  const char* const end = p + text.size();
  while (p < end) {
    const int b = byte_level_byte(decode_utf8(p, end));  // malformed UTF-8 decodes to U+FFFD: not in it
    if (b < 0) {
      out.resize(mark);
      return false;
    }
    out.push_back(static_cast<char>(b));
  }
  return true;
}

/// The 256 characters of the alphabet as UTF-8 strings, in code point order (the order of GPT-2's first 256 ids
/// and of the alphabet Hugging Face's BpeTrainer puts after the special tokens).
inline std::vector<std::string> byte_level_alphabet() {
  std::vector<std::string> out;
  for (char32_t c = 0; c < detail::kCharToByte.size(); ++c) {
    if (detail::kCharToByte[c] < 0) continue;
    out.emplace_back();
    append_utf8(out.back(), c);
  }
  return out;
}

}  // namespace eigenformer::text
