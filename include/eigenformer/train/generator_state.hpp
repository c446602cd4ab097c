// The random generators inside a model (its dropout layers) and their saved state, so that a resumed run draws the
// same dropout masks as an uninterrupted one (the role of torch.get_rng_state / set_rng_state in a checkpoint).
// The generators are those the model's module tree declares (nn/module.hpp: visit_generators); a model without
// visit_generators has none.
#pragma once

#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "eigenformer/core/error.hpp"
#include "eigenformer/tensor/tensor.hpp"

namespace eigenformer::train {

namespace detail {

template <class Model, class F>
auto visit_model_generators(Model& model, F&& f, int) -> decltype(model.visit_generators(f), void()) {
  model.visit_generators(f);
}
template <class Model, class F>
void visit_model_generators(Model&, F&&, long) {}

}  // namespace detail

/// The state of every generator of model, as a JSON object name -> the engine's text form (empty when the model
/// has none).
template <class Model>
nlohmann::json generator_states(Model& model) {
  nlohmann::json out = nlohmann::json::object();
  detail::visit_model_generators(
      model,
      [&out](const std::string& name, Generator& gen) {
        std::ostringstream s;
        s << gen;
        out[name] = s.str();
      },
      0);
  return out;
}

/// Restores states saved by generator_states. All-or-nothing: throws ValueError, changing nothing, when the names
/// differ from the model's generators or a state does not parse.
template <class Model>
void restore_generator_states(Model& model, const nlohmann::json& states) {
  using eigenformer::detail::concat;
  constexpr const char* fn = "restore_generator_states";
  if (!states.is_object()) throw ValueError(concat(fn, ": expected a JSON object, got ", states.dump()));
  std::vector<std::pair<Generator*, Generator>> staged;
  std::set<std::string> seen;
  detail::visit_model_generators(
      model,
      [&](const std::string& name, Generator& gen) {
        seen.insert(name);
        const auto it = states.find(name);
        if (it == states.end() || !it->is_string())
          throw ValueError(concat(fn, ": no saved state for generator \"", name, "\""));
        std::istringstream s(it->get<std::string>());
        Generator restored;
        s >> restored;
        if (s.fail()) throw ValueError(concat(fn, ": the saved state of generator \"", name, "\" does not parse"));
        staged.emplace_back(&gen, restored);
      },
      0);
  for (auto it = states.begin(); it != states.end(); ++it)
    if (!seen.count(it.key()))
      throw ValueError(concat(fn, ": saved generator \"", it.key(), "\" is not a generator of the model"));
  for (auto& [target, value] : staged) *target = value;
}

}  // namespace eigenformer::train
