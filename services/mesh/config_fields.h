// A config section as a list of fields: each names its key, says what it means,
// and knows how to read a JSON value into the option structs (checking it) and
// to write the current value back. Defaults are whatever the option structs
// hold when default-constructed, so the config file, the built-in defaults and
// the docs' tables all come from one place. A key no field has is refused.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moemesh::config {

template <class T>
struct Field {
  std::string key;
  std::string help;
  std::function<void(T&, const nlohmann::json&, const std::string& where)> read;  // throws std::invalid_argument
  std::function<nlohmann::json(const T&)> write;
};
template <class T>
using Fields = std::vector<Field<T>>;

[[noreturn]] inline void refuse(const std::string& where, const std::string& what) {
  throw std::invalid_argument(where + " " + what);
}

// Reads `j` (an object, or absent) into `out`; every key must be a field.
template <class T>
void read(const Fields<T>& fields, const nlohmann::json& j, const std::string& where, T& out) {
  if (j.is_null()) return;
  if (!j.is_object()) throw std::invalid_argument(where + " must be an object");
  for (const auto& [k, v] : j.items()) {
    const Field<T>* f = nullptr;
    for (const auto& x : fields)
      if (x.key == k) f = &x;
    if (!f) {
      std::string known;
      for (const auto& x : fields) known += (known.empty() ? "" : ", ") + x.key;
      throw std::invalid_argument(where + "." + k + " is not an option (" + where + " has " + known + ")");
    }
    f->read(out, v, where + "." + k);
  }
}

template <class T>
nlohmann::json write(const Fields<T>& fields, const T& v) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& f : fields) j[f.key] = f.write(v);
  return j;
}

// A markdown table of a section: key, default, meaning.
template <class T>
std::string reference(const Fields<T>& fields, const T& defaults, const std::string& section) {
  std::string s = "| `" + section + "` | default | |\n|---|---|---|\n";
  for (const auto& f : fields) s += "| `" + f.key + "` | `" + f.write(defaults).dump() + "` | " + f.help + " |\n";
  return s;
}

// ---- field builders: an accessor (a lambda T& -> V&) and the value's checks ----

template <class T, class Acc>
Field<T> boolean(std::string key, Acc acc, std::string help) {
  return {std::move(key), std::move(help),
          [acc](T& t, const nlohmann::json& v, const std::string& w) {
            if (!v.is_boolean()) refuse(w, "must be true or false, not " + v.dump());
            acc(t) = v.get<bool>();
          },
          [acc](const T& t) { T c = t; return nlohmann::json(acc(c)); }};
}

// An integer in [lo, hi].
template <class T, class Acc>
Field<T> integer(std::string key, Acc acc, std::string help, int64_t lo, int64_t hi = INT64_MAX) {
  return {std::move(key), std::move(help),
          [acc, lo, hi](T& t, const nlohmann::json& v, const std::string& w) {
            if (!v.is_number_integer()) refuse(w, "must be an integer, not " + v.dump());
            const int64_t x = v.get<int64_t>();
            if (x < lo || x > hi)
              refuse(w, "must be in " + std::to_string(lo) + ".." + (hi == INT64_MAX ? std::string("") : std::to_string(hi)) +
                            ", not " + std::to_string(x));
            using V = std::decay_t<decltype(acc(t))>;
            acc(t) = static_cast<V>(x);
          },
          [acc](const T& t) { T c = t; return nlohmann::json(acc(c)); }};
}

template <class T, class Acc>
Field<T> number(std::string key, Acc acc, std::string help, double lo, double hi) {
  return {std::move(key), std::move(help),
          [acc, lo, hi](T& t, const nlohmann::json& v, const std::string& w) {
            if (!v.is_number()) refuse(w, "must be a number, not " + v.dump());
            const double x = v.get<double>();
            if (!(x >= lo && x <= hi)) refuse(w, "must be in " + nlohmann::json(lo).dump() + ".." + nlohmann::json(hi).dump());
            acc(t) = x;
          },
          [acc](const T& t) { T c = t; return nlohmann::json(acc(c)); }};
}

// A duration in milliseconds (key ending _ms), at least `lo_ms`.
template <class T, class Acc>
Field<T> millis(std::string key, Acc acc, std::string help, int64_t lo_ms = 1) {
  return {std::move(key), std::move(help),
          [acc, lo_ms](T& t, const nlohmann::json& v, const std::string& w) {
            if (!v.is_number_integer()) refuse(w, "must be a whole number of milliseconds, not " + v.dump());
            if (v.get<int64_t>() < lo_ms) refuse(w, "must be >= " + std::to_string(lo_ms));
            acc(t) = std::chrono::milliseconds(v.get<int64_t>());
          },
          [acc](const T& t) { T c = t; return nlohmann::json(acc(c).count()); }};
}

// A duration in seconds (key ending _s, fractions allowed), >= 0.
template <class T, class Acc>
Field<T> seconds(std::string key, Acc acc, std::string help) {
  return {std::move(key), std::move(help),
          [acc](T& t, const nlohmann::json& v, const std::string& w) {
            if (!v.is_number() || v.get<double>() < 0) refuse(w, "must be a number of seconds >= 0, not " + v.dump());
            acc(t) = std::chrono::milliseconds(static_cast<int64_t>(v.get<double>() * 1000));
          },
          [acc](const T& t) { T c = t; return nlohmann::json(static_cast<double>(acc(c).count()) / 1000.0); }};
}

// A string; `check` may throw std::invalid_argument with what is wrong.
template <class T, class Acc>
Field<T> text(std::string key, Acc acc, std::string help, std::function<void(const std::string&)> check = {}) {
  return {std::move(key), std::move(help),
          [acc, check](T& t, const nlohmann::json& v, const std::string& w) {
            if (!v.is_string()) refuse(w, "must be a string, not " + v.dump());
            if (check) try {
                check(v.get<std::string>());
              } catch (const std::invalid_argument& e) {
                refuse(w, e.what());
              }
            acc(t) = v.get<std::string>();
          },
          [acc](const T& t) { T c = t; return nlohmann::json(acc(c)); }};
}

template <class T, class Acc>
Field<T> strings(std::string key, Acc acc, std::string help) {
  return {std::move(key), std::move(help),
          [acc](T& t, const nlohmann::json& v, const std::string& w) {
            if (!v.is_array()) refuse(w, "must be an array of strings");
            std::vector<std::string> out;
            for (const auto& s : v) {
              if (!s.is_string()) refuse(w, "must be an array of strings");
              out.push_back(s.get<std::string>());
            }
            acc(t) = std::move(out);
          },
          [acc](const T& t) { T c = t; return nlohmann::json(acc(c)); }};
}

// One of named values: from_name gives nullopt for anything else.
template <class T, class Acc, class E>
Field<T> choice(std::string key, Acc acc, std::string help, std::function<std::optional<E>(const std::string&)> from_name,
                std::function<std::string(E)> name_of, std::string allowed) {
  return {std::move(key), std::move(help),
          [acc, from_name, allowed](T& t, const nlohmann::json& v, const std::string& w) {
            const auto e = v.is_string() ? from_name(v.get<std::string>()) : std::nullopt;
            if (!e) refuse(w, "must be " + allowed + ", not " + v.dump());
            acc(t) = *e;
          },
          [acc, name_of](const T& t) { T c = t; return nlohmann::json(name_of(acc(c))); }};
}

// tcp://, ipc:// or inproc:// addresses.
void check_address(const std::string& a);

}  // namespace moemesh::config
