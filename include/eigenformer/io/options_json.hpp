// Options structs as JSON objects, from the one list of fields each declares (core/fields.hpp): numbers, booleans,
// enums by name and nested Options structs as nested objects. The configs of run folders (train/run_config.hpp)
// are written and read with these.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

#include "eigenformer/core/error.hpp"
#include "eigenformer/core/fields.hpp"

namespace eigenformer::io {

namespace detail {

using eigenformer::detail::concat;

/// The double nearest the shortest decimal that reads back as v: a float option 0.1f is written as 0.1, not as
/// 0.10000000149011612.
template <typename T>
double shortest_double(T v) {
  if constexpr (std::is_same_v<T, float>) {
    char buf[32];
    for (int precision = 6; precision <= 9; ++precision) {
      std::snprintf(buf, sizeof buf, "%.*g", precision, static_cast<double>(v));
      if (std::strtof(buf, nullptr) == v) break;
    }
    return std::strtod(buf, nullptr);
  } else {
    return static_cast<double>(v);
  }
}

struct FieldWriter {
  nlohmann::json& out;
  template <class F>
  void operator()(const char* name, F& field);
};

template <class O>
nlohmann::json fields_to_json(O o) {
  nlohmann::json j = nlohmann::json::object();
  FieldWriter w{j};
  o.visit_fields(w);
  return j;
}

template <class F>
void FieldWriter::operator()(const char* name, F& field) {
  if constexpr (has_fields_v<F>)
    out[name] = fields_to_json(field);
  else if constexpr (std::is_enum_v<F>)
    out[name] = enum_name(field);
  else if constexpr (std::is_floating_point_v<F>)
    out[name] = shortest_double(field);
  else
    out[name] = field;
}

/// Reads each field present in j, checking its type; path names the object in messages ("encoder.layer").
struct FieldReader {
  const nlohmann::json& j;
  const std::string& path;
  const char* fn;
  template <class F>
  void operator()(const char* name, F& field);
};

/// Whether a field of that name exists.
struct KeyProbe {
  const std::string& key;
  bool& known;
  template <class F>
  void operator()(const char* name, F&) {
    known = known || key == name;
  }
};

template <class O>
void fields_from_json(const nlohmann::json& j, O& o, const std::string& path, const char* fn) {
  if (!j.is_object())
    throw ValueError(concat(fn, ": ", path.empty() ? std::string("the options") : "\"" + path + "\"", " is ", j.dump(),
                            ", expected a JSON object"));
  FieldReader r{j, path, fn};
  o.visit_fields(r);
  for (auto it = j.begin(); it != j.end(); ++it) {  // a misspelt key would otherwise be ignored silently
    bool known = false;
    KeyProbe probe{it.key(), known};
    o.visit_fields(probe);
    if (!known)
      throw ValueError(concat(fn, ": unknown option \"", path.empty() ? it.key() : path + "." + it.key(), "\""));
  }
}

template <class F>
void FieldReader::operator()(const char* name, F& field) {
  if (!j.contains(name)) return;
  const nlohmann::json& v = j.at(name);
  const std::string where = path.empty() ? std::string(name) : path + "." + name;
  const auto fail = [&](const std::string& expected) {
    return ValueError(concat(fn, ": \"", where, "\" is ", v.dump(), ", expected ", expected));
  };
  if constexpr (has_fields_v<F>) {
    fields_from_json(v, field, where, fn);
  } else if constexpr (std::is_enum_v<F>) {
    std::string names;
    for (const auto& [value, n] : enum_names(F{})) names += (names.empty() ? "\"" : ", \"") + std::string(n) + "\"";
    if (!v.is_string()) throw fail("one of " + names);
    const auto e = enum_from_name<F>(v.get<std::string>());
    if (!e) throw fail("one of " + names);
    field = *e;
  } else if constexpr (std::is_same_v<F, bool>) {
    if (!v.is_boolean()) throw fail("a boolean");
    field = v.get<bool>();
  } else if constexpr (std::is_floating_point_v<F>) {
    if (!v.is_number()) throw fail("a number");
    field = static_cast<F>(v.get<double>());
  } else if constexpr (std::is_unsigned_v<F>) {
    if (!v.is_number_unsigned()) throw fail("an integer >= 0");
    field = v.get<F>();
  } else if constexpr (std::is_integral_v<F>) {
    if (!v.is_number_integer()) throw fail("an integer");
    field = v.get<F>();
  } else {
    field = v.get<F>();
  }
}

}  // namespace detail

/// The options as a JSON object (every field; enums by name).
template <class O>
nlohmann::json options_to_json(const O& options) {
  return detail::fields_to_json(options);
}

/// Options of type O read from j: fields absent from j keep their defaults. Throws ValueError naming fn and the
/// field's dotted path for a value of the wrong type, an unknown enum name or an unknown key.
template <class O>
O options_from_json(const nlohmann::json& j, const char* fn = "options_from_json") {
  O o;
  detail::fields_from_json(j, o, "", fn);
  return o;
}

}  // namespace eigenformer::io
