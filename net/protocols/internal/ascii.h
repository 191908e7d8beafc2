// Byte classification and small ASCII helpers shared by the protocol parsers.
//
// The classes are the RFC 9110 ones (tchar for tokens, VCHAR, obs-text) as 256-entry tables, so
// a parser's inner loop is one load per byte. Locale-independent by construction: <cctype>
// would consult the C locale and treat bytes >= 0x80 differently per platform.
//
// Thread-safety: pure functions over constant tables.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace shardloop::protocols::internal {

inline constexpr uint8_t kTokenChar = 1;   // RFC 9110 tchar
inline constexpr uint8_t kFieldChar = 2;   // VCHAR, SP, HTAB, obs-text: allowed in a field value
inline constexpr uint8_t kTargetChar = 4;  // VCHAR: allowed in a request-target
inline constexpr uint8_t kHexDigit = 8;
inline constexpr uint8_t kHostChar = 16;  // reg-name, IP literal and port characters

constexpr std::array<uint8_t, 256> make_char_table() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint8_t bits = 0;
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    if (alpha || digit) bits |= kTokenChar;
    for (char s : std::string_view("!#$%&'*+-.^_`|~")) {
      if (c == static_cast<unsigned char>(s)) bits |= kTokenChar;
    }
    if ((c >= 0x21 && c <= 0x7e) || c == ' ' || c == '\t' || c >= 0x80) bits |= kFieldChar;
    if (c >= 0x21 && c <= 0x7e) bits |= kTargetChar;
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) bits |= kHexDigit;
    if (alpha || digit) bits |= kHostChar;
    for (char s : std::string_view("-._~!$&'()*+,;=:[]%")) {
      if (c == static_cast<unsigned char>(s)) bits |= kHostChar;
    }
    t[c] = bits;
  }
  return t;
}

inline constexpr std::array<uint8_t, 256> kCharTable = make_char_table();

inline bool has_class(char c, uint8_t cls) {
  return (kCharTable[static_cast<unsigned char>(c)] & cls) != 0;
}

// True when every byte of `s` is in `cls` (and `s` is not empty).
inline bool all_of_class(std::string_view s, uint8_t cls) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!has_class(c, cls)) return false;
  }
  return true;
}

inline char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

inline bool equals_ignore_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Strips RFC 9110 optional whitespace (SP / HTAB) from both ends.
inline std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace shardloop::protocols::internal
