// Options structs list their fields once, by name: EIGENFORMER_FIELDS(a, b, c) inside the struct defines
// `template <class V> void visit_fields(V& v)` calling v("a", a), v("b", b), v("c", c) (a nested Options struct is
// one field), and configs are written, read and compared from that one list (io/options_json.hpp). An enum lists
// its names once, in a function `enum_names(E)` found by argument-dependent lookup, returning an EnumNames array.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

// A macro for each of up to 16 arguments: EIGENFORMER_FOR_EACH(m, a, b) is m(a) m(b).
#define EIGENFORMER_FE_1(m, x) m(x)
#define EIGENFORMER_FE_2(m, x, ...) m(x) EIGENFORMER_FE_1(m, __VA_ARGS__)
#define EIGENFORMER_FE_3(m, x, ...) m(x) EIGENFORMER_FE_2(m, __VA_ARGS__)
#define EIGENFORMER_FE_4(m, x, ...) m(x) EIGENFORMER_FE_3(m, __VA_ARGS__)
#define EIGENFORMER_FE_5(m, x, ...) m(x) EIGENFORMER_FE_4(m, __VA_ARGS__)
#define EIGENFORMER_FE_6(m, x, ...) m(x) EIGENFORMER_FE_5(m, __VA_ARGS__)
#define EIGENFORMER_FE_7(m, x, ...) m(x) EIGENFORMER_FE_6(m, __VA_ARGS__)
#define EIGENFORMER_FE_8(m, x, ...) m(x) EIGENFORMER_FE_7(m, __VA_ARGS__)
#define EIGENFORMER_FE_9(m, x, ...) m(x) EIGENFORMER_FE_8(m, __VA_ARGS__)
#define EIGENFORMER_FE_10(m, x, ...) m(x) EIGENFORMER_FE_9(m, __VA_ARGS__)
#define EIGENFORMER_FE_11(m, x, ...) m(x) EIGENFORMER_FE_10(m, __VA_ARGS__)
#define EIGENFORMER_FE_12(m, x, ...) m(x) EIGENFORMER_FE_11(m, __VA_ARGS__)
#define EIGENFORMER_FE_13(m, x, ...) m(x) EIGENFORMER_FE_12(m, __VA_ARGS__)
#define EIGENFORMER_FE_14(m, x, ...) m(x) EIGENFORMER_FE_13(m, __VA_ARGS__)
#define EIGENFORMER_FE_15(m, x, ...) m(x) EIGENFORMER_FE_14(m, __VA_ARGS__)
#define EIGENFORMER_FE_16(m, x, ...) m(x) EIGENFORMER_FE_15(m, __VA_ARGS__)
#define EIGENFORMER_FE_PICK(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, name, ...) name
#define EIGENFORMER_FOR_EACH(m, ...)                                                                          \
  EIGENFORMER_FE_PICK(__VA_ARGS__, EIGENFORMER_FE_16, EIGENFORMER_FE_15, EIGENFORMER_FE_14, EIGENFORMER_FE_13, \
                      EIGENFORMER_FE_12, EIGENFORMER_FE_11, EIGENFORMER_FE_10, EIGENFORMER_FE_9, EIGENFORMER_FE_8,  \
                      EIGENFORMER_FE_7, EIGENFORMER_FE_6, EIGENFORMER_FE_5, EIGENFORMER_FE_4, EIGENFORMER_FE_3,     \
                      EIGENFORMER_FE_2, EIGENFORMER_FE_1)                                                         \
  (m, __VA_ARGS__)
#define EIGENFORMER_VISIT_FIELD(name) v(#name, name);

/// Inside an Options struct: its fields, by their member names, for visit_fields.
#define EIGENFORMER_FIELDS(...)                  \
  template <class V>                             \
  void visit_fields(V& v) {                      \
    EIGENFORMER_FOR_EACH(EIGENFORMER_VISIT_FIELD, __VA_ARGS__) \
  }

namespace eigenformer {

/// The (value, name) pairs of an enum.
template <class E, std::size_t N>
using EnumNames = std::array<std::pair<E, const char*>, N>;

namespace detail {

template <class T, class = void>
struct HasEnumNames : std::false_type {};
template <class T>
struct HasEnumNames<T, std::void_t<decltype(enum_names(std::declval<T>()))>> : std::true_type {};

/// A field visitor that accepts any field, for detecting visit_fields.
struct AnyField {
  template <class F>
  void operator()(const char*, F&) {}
};

template <class T, class = void>
struct HasFields : std::false_type {};
template <class T>
struct HasFields<T, std::void_t<decltype(std::declval<T&>().visit_fields(std::declval<AnyField&>()))>>
    : std::true_type {};

}  // namespace detail

/// True for an Options struct with visit_fields.
template <class T>
inline constexpr bool has_fields_v = detail::HasFields<T>::value;

/// True for an enum with enum_names.
template <class T>
inline constexpr bool has_enum_names_v = std::is_enum_v<T> && detail::HasEnumNames<T>::value;

/// The name of e, or "?" for a value without one.
template <class E>
const char* enum_name(E e) {
  for (const auto& [value, name] : enum_names(E{}))
    if (value == e) return name;
  return "?";
}

/// The value named s, if any.
template <class E>
std::optional<E> enum_from_name(std::string_view s) {
  for (const auto& [value, name] : enum_names(E{}))
    if (s == name) return value;
  return std::nullopt;
}

}  // namespace eigenformer
