// The text of generated tokens as it can be shown while they come (a streaming detokenizer): a token's bytes may
// end inside a UTF-8 character (byte-level BPE) or inside a stop string that the next tokens complete, so such a tail
// is held back until the next bytes decide it. Stop strings are found wherever they fall, across token boundaries
// (transformers' StopStringCriteria), and the text ends before the first one.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "eigenformer/core/error.hpp"

namespace eigenformer {

/// Accumulates the bytes of generated tokens and releases the text that is final.
class TextStream {
 public:
  /// Throws ValueError for an empty stop string (it would match everywhere).
  explicit TextStream(std::vector<std::string> stop_strings = {}) : stops_(std::move(stop_strings)) {
    for (std::size_t i = 0; i < stops_.size(); ++i)
      if (stops_[i].empty())
        throw ValueError(detail::concat("TextStream: stop string ", i, " is empty, expected at least one byte"));
  }

  /// Adds the bytes of the next token and returns the text that became final (possibly empty): everything but a
  /// tail that could begin a stop string or that ends inside a UTF-8 character. Once a stop string appears,
  /// stopped() is true, the text released ends just before it, and later calls release nothing.
  std::string push(std::string_view bytes) {
    if (stopped_) return {};
    pending_.append(bytes);
    std::size_t stop_at = std::string::npos;
    for (const std::string& s : stops_) stop_at = std::min(stop_at, pending_.find(s));
    if (stop_at != std::string::npos) {
      stopped_ = true;
      return release(stop_at);
    }
    std::size_t keep = 0;  // the longest tail of pending_ that a stop string starts with
    for (const std::string& s : stops_)
      for (std::size_t n = std::min(s.size() - 1, pending_.size()); n > keep; --n)
        if (pending_.compare(pending_.size() - n, n, s, 0, n) == 0) {
          keep = n;
          break;
        }
    return release(utf8_boundary(pending_.size() - keep));
  }

  /// The text held back, released at the end of generation (an incomplete UTF-8 character as its bytes).
  std::string flush() { return stopped_ ? std::string() : release(pending_.size()); }

  /// Whether a stop string has appeared.
  bool stopped() const { return stopped_; }
  /// Every byte released so far.
  const std::string& text() const { return text_; }

 private:
  /// The largest n <= end such that pending_[0, n) does not end inside a UTF-8 character.
  std::size_t utf8_boundary(std::size_t end) const {
    // Look back at most 3 bytes for the lead byte of the last character; cut before it if its bytes are not all
    // there. Bytes that are not UTF-8 at all are released as they are.
    for (std::size_t back = 1; back <= 3 && back <= end; ++back) {
      const unsigned char c = static_cast<unsigned char>(pending_[end - back]);
      if ((c & 0xC0) == 0x80) continue;  // a continuation byte: keep looking for the lead byte
      const std::size_t need = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 1;
      return need > back ? end - back : end;
    }
    return end;
  }
  std::string release(std::size_t n) {
    std::string out = pending_.substr(0, n);
    pending_.erase(0, stopped_ ? pending_.size() : n);
    text_ += out;
    return out;
  }

  std::vector<std::string> stops_;
  std::string pending_;  // bytes not yet released
  std::string text_;
  bool stopped_ = false;
};

}  // namespace eigenformer
