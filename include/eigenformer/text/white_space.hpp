// Unicode's White_Space property (PropList.txt): what Rust's char::is_whitespace, Oniguruma's and the regex crate's
// \s, and so Hugging Face tokenizers' pre-tokenizers and added-token stripping, count as whitespace.
#pragma once

namespace eigenformer::text {

/// White_Space: \t \n \v \f \r, space, U+0085, and the Zs, Zl and Zp characters.
constexpr bool is_white_space(char32_t cp) noexcept {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

}  // namespace eigenformer::text
