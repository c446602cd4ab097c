// Var<T>: a tensor in the autograd graph, and the reverse-mode engine that walks that graph once.
//
// Each op computes its value and attaches its backward function in one place (micrograd's engine.py, on whole
// tensors). backward() finds a topological order iteratively (no recursion: deep graphs must not overflow the
// stack), runs each node's backward once in reverse order and accumulates (+=) into every leaf that requires
// grad, then frees the graph unless asked to retain it (torch.Tensor.backward semantics).
//
// Threads: several threads may each build a graph and run backward at the same time over the same leaves (a
// model's parameters): the engine never marks or writes a leaf except through accumulate_grad, which adds under a
// lock, so each leaf's gradient ends as the sum of every thread's contribution, in the order they arrive. Threads
// that run as the numbered parts of a PartGradients add in part order instead, the same bits on every run. A
// graph's own nodes (op results) belong to the thread that runs its backward; optimizer steps and zero_grad must
// not overlap a backward.
//
// A GradientReadyObserver installed on a thread hears, during that thread's backward passes, of each leaf whose
// gradient that pass will not change any more (what a data-parallel trainer needs to start a gradient all-reduce
// while the rest of the backward runs).
#pragma once

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "eigenformer/autograd/grad_mode.hpp"
#include "eigenformer/core/address_lock.hpp"
#include "eigenformer/core/error.hpp"
#include "eigenformer/core/scoped_value.hpp"
#include "eigenformer/core/small_object_pool.hpp"
#include "eigenformer/tensor/tensor.hpp"

namespace eigenformer {

template <typename T>
class Var;

namespace detail {

/// A node's backward closure: a move-only std::function<void(Tensor<T>&)> whose captures live in a SmallObjectPool
/// block (std::function would take most closures, which capture a few tensors, from the system). Closures taking
/// const Tensor<T>& fit as well.
template <typename T>
class BackwardFunction {
 public:
  BackwardFunction() = default;
  template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, BackwardFunction>>>
  BackwardFunction(F&& f) {  // NOLINT: implicit, as std::function's
    using D = std::decay_t<F>;
    PoolAllocator<D> alloc;
    D* p = alloc.allocate(1);
    try {
      new (p) D(std::forward<F>(f));
    } catch (...) {
      alloc.deallocate(p, 1);
      throw;
    }
    object_ = p;
    call_ = [](void* o, Tensor<T>& g) { (*static_cast<D*>(o))(g); };
    destroy_ = [](void* o) noexcept {
      D* d = static_cast<D*>(o);
      d->~D();
      PoolAllocator<D>().deallocate(d, 1);
    };
  }
  BackwardFunction(BackwardFunction&& o) noexcept : object_(o.object_), call_(o.call_), destroy_(o.destroy_) {
    o.object_ = nullptr;
  }
  BackwardFunction& operator=(BackwardFunction&& o) noexcept {
    if (this != &o) {
      reset();
      object_ = o.object_;
      call_ = o.call_;
      destroy_ = o.destroy_;
      o.object_ = nullptr;
    }
    return *this;
  }
  BackwardFunction& operator=(std::nullptr_t) noexcept {
    reset();
    return *this;
  }
  BackwardFunction(const BackwardFunction&) = delete;
  BackwardFunction& operator=(const BackwardFunction&) = delete;
  ~BackwardFunction() { reset(); }

  explicit operator bool() const noexcept { return object_ != nullptr; }
  void operator()(Tensor<T>& g) const { call_(object_, g); }

 private:
  void reset() noexcept {
    if (!object_) return;
    void* o = object_;
    object_ = nullptr;  // the closure's destructor may free nodes that reach back here: be empty first
    destroy_(o);
  }

  void* object_ = nullptr;
  void (*call_)(void*, Tensor<T>&) = nullptr;
  void (*destroy_)(void*) noexcept = nullptr;
};

template <typename T>
struct Node;
template <typename T>
using NodePtr = std::shared_ptr<Node<T>>;
/// Lists of nodes (parents, the backward's topological order), with storage from the small-object pool.
template <typename T>
using NodeList = std::vector<NodePtr<T>, PoolAllocator<NodePtr<T>>>;

/// One vertex of the graph. Backward functions capture only the op's inputs (and plain tensors), never the
/// output, so the graph holds no cycles and frees itself when the last Var handle goes.
template <typename T>
struct Node {
  Tensor<T> value;
  Tensor<T> grad;  // undefined until a gradient arrives
  bool requires_grad = false;
  bool is_leaf = true;
  bool freed = false;       // a non-leaf whose backward already ran without retain_graph
  bool visit_mark = false;  // scratch flag of the topological sort
  const char* op = "leaf";
  NodeList<T> parents;  // inputs that require grad
  BackwardFunction<T> backward_fn;

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Destroying a long chain through shared_ptr destructors would recurse once per node; unlink iteratively.
  ~Node() {
    backward_fn = nullptr;
    NodeList<T> stack = std::move(parents);
    while (!stack.empty()) {
      std::shared_ptr<Node> p = std::move(stack.back());
      stack.pop_back();
      if (p.use_count() == 1) {
        p->backward_fn = nullptr;
        for (auto& q : p->parents) stack.push_back(std::move(q));
        p->parents.clear();
      }
    }
  }

  /// grad += g. The first gradient takes over g's buffer when nothing else shares it, and a non-leaf's even when
  /// something does: a non-leaf gradient is only ever read (by this node's backward, once), and a later += into a
  /// shared buffer writes a new one (copy on write). A leaf's gradient goes to users and optimizers, who may change
  /// it in place: it always owns its buffer. Into a leaf, under its lock (backward may run on several threads over
  /// graphs that share leaves).
  void accumulate(Tensor<T>&& g) {
    if (g.shape() != value.shape())
      throw AutogradError(detail::concat("accumulate_grad: gradient is ", to_string(g.shape()), ", expected ",
                                         to_string(value.shape()), ", the shape of ",
                                         is_leaf ? std::string("a leaf") : detail::concat("the output of ", op)));
    if (is_leaf) {
      std::lock_guard<std::mutex> lock(address_lock(this));
      add(std::move(g));
    } else {
      add(std::move(g));
    }
  }

 private:
  void add(Tensor<T>&& g) {
    if (!grad.defined()) {
      grad = g.is_unique() || !is_leaf ? std::move(g) : g.clone();
    } else if (grad.is_unique()) {
      grad += g;
    } else {
      Tensor<T> sum = Tensor<T>::empty(grad.shape());
      sum.array() = grad.array() + g.array();
      grad = std::move(sum);
    }
  }
};

/// Where the calling thread's leaf gradients go instead of into the leaves: thread_current<PartSlot<T>>(), set by
/// PartGradients::Part.
template <typename T>
struct PartSlot;

}  // namespace detail

/// Told, during the backward passes of the thread it is installed on (GradientReadyScope), of each leaf that
/// requires grad as soon as that pass has added its last contribution to the leaf's gradient. Leaves the pass
/// does not reach are not reported. Called on the thread running backward, between two nodes' backward functions.
template <typename T>
class GradientReadyObserver {
 public:
  virtual ~GradientReadyObserver() = default;
  virtual void gradient_ready(const std::shared_ptr<detail::Node<T>>& leaf) = 0;
};

/// Installs an observer on the calling thread for the scope's lifetime (restoring the previous one after).
template <typename T>
class GradientReadyScope : detail::ScopedValue<GradientReadyObserver<T>*> {
 public:
  explicit GradientReadyScope(GradientReadyObserver<T>& observer)
      : detail::ScopedValue<GradientReadyObserver<T>*>(detail::thread_current<GradientReadyObserver<T>>(),
                                                       &observer) {}
};

/// A tensor that records the ops applied to it so that backward() can compute gradients.
///
/// Copies are handles to the same node (like torch.Tensor). A leaf is made by the user (parameters, inputs); a
/// non-leaf is the result of an op while gradient recording is on and some input requires grad.
template <typename T>
class Var {
 public:
  using Scalar = T;

  /// An undefined Var (no node).
  Var() = default;

  /// A leaf holding value.
  explicit Var(Tensor<T> value, bool requires_grad = false)
      : node_(std::allocate_shared<detail::Node<T>>(detail::PoolAllocator<detail::Node<T>>())) {
    node_->value = std::move(value);
    node_->requires_grad = requires_grad;
  }

  /// The result of op applied to inputs: it requires grad when recording is on and some input requires grad.
  /// Attach the backward function with on_backward().
  Var(Tensor<T> value, std::initializer_list<Var> inputs, const char* op = "op") : Var(std::move(value), false) {
    link(inputs.begin(), inputs.end(), op);
  }
  Var(Tensor<T> value, const std::vector<Var>& inputs, const char* op) : Var(std::move(value), false) {
    link(inputs.begin(), inputs.end(), op);
  }

  /// Attaches the op's backward: f(dy) accumulates into the inputs with accumulate_grad(). Dropped (with its
  /// captures) when this Var does not require grad. The engine discards dy after the call, so f may take it as
  /// Tensor<T>& and write into it when dy.is_unique() (no other tensor, gradient or value, shares its buffer)
  /// instead of allocating a buffer of the same size.
  template <typename F>
  void on_backward(F&& f) {
    if (node_->requires_grad && !node_->is_leaf) node_->backward_fn = std::forward<F>(f);
  }

  bool defined() const { return node_ != nullptr; }
  const Tensor<T>& value() const { return node("Var::value").value; }
  /// Mutable value, for optimizers and initialization (modifying a value a live graph saved corrupts it).
  Tensor<T>& value() { return node("Var::value").value; }
  const Shape& shape() const { return value().shape(); }
  Index dim() const { return value().dim(); }
  Index size(Index axis) const { return value().size(axis); }
  Index numel() const { return value().numel(); }
  T item() const { return value().item(); }

  bool requires_grad() const { return node("Var::requires_grad").requires_grad; }
  /// Sets requires_grad on a leaf; throws AutogradError on an op result.
  Var& set_requires_grad(bool r) {
    if (!node("Var::set_requires_grad").is_leaf)
      throw AutogradError(detail::concat("set_requires_grad: only leaves can change requires_grad; this Var is the output of ",
                                 node_->op));
    node_->requires_grad = r;
    return *this;
  }
  bool is_leaf() const { return node("Var::is_leaf").is_leaf; }
  const char* op_name() const { return node("Var::op_name").op; }

  /// The accumulated gradient; undefined until a backward pass reaches this Var.
  const Tensor<T>& grad() const { return node("Var::grad").grad; }
  Tensor<T>& grad() { return node("Var::grad").grad; }
  bool has_grad() const { return node("Var::has_grad").grad.defined(); }
  /// grad += g (g must have the value's shape); called by backward functions. Inside a PartGradients part, a
  /// leaf's g is held for the part's turn instead.
  void accumulate_grad(Tensor<T> g) const { accumulate_into(node_, std::move(g)); }
  /// The gradient's elements when this is an op result (not a leaf) whose gradient exists and shares its buffer
  /// with no other tensor, else null: a backward may add its result straight into them (what accumulate_grad does,
  /// without a temporary of the same size). Null for leaves: their gradients change only through accumulate_grad,
  /// under a lock, since other threads' backward passes may be adding into them.
  T* grad_to_accumulate() const {
    detail::Node<T>& n = node("Var::grad_to_accumulate");
    return !n.is_leaf && n.grad.defined() && n.grad.is_unique() ? n.grad.data() : nullptr;
  }
  /// Clears the gradient: drops it (set_to_none, PyTorch's default) or fills it with zeros.
  void zero_grad(bool set_to_none = true) const {
    detail::Node<T>& n = node("Var::zero_grad");
    if (set_to_none)
      n.grad = Tensor<T>();
    else if (n.grad.defined())
      n.grad.set_zero();
  }

  /// A new leaf sharing this value, cut from the graph.
  Var detach() const { return Var(value(), false); }

  /// Backpropagates from a one-element Var (seed 1).
  void backward(bool retain_graph = false) const {
    if (!node_) throw_undefined("Var::backward");
    if (numel() != 1)
      throw AutogradError(detail::concat("backward: output is ", to_string(shape()),
                                 ", expected one element; pass a seed gradient of that shape"));
    backward(Tensor<T>::ones(shape()), retain_graph);
  }

  /// Backpropagates seed (the gradient of some scalar with respect to this Var).
  void backward(const Tensor<T>& seed, bool retain_graph = false) const {
    if (!node_) throw_undefined("Var::backward");
    if (!requires_grad())
      throw AutogradError("backward: this Var does not require grad (no input of its graph requires grad)");
    if (seed.shape() != shape())
      throw ShapeError(detail::concat("backward: seed is ", to_string(seed.shape()), ", output is ", to_string(shape())));
    if (node_->freed)
      throw AutogradError(detail::concat("backward: the graph of ", node_->op,
                                 " was already freed by a previous backward; pass retain_graph = true to the first"));
    detail::NodeList<T> order = topological_order();
    accumulate_into(node_, seed.clone());
    GradientReadyObserver<T>* observer = detail::thread_current<GradientReadyObserver<T>>();
    // With an observer: how many nodes still to run feed each leaf (a node listing a leaf twice counts twice).
    std::unordered_map<detail::Node<T>*, std::size_t> pending;
    if (observer) {
      if (node_->is_leaf) observer->gradient_ready(node_);
      for (auto& n : order)
        for (auto& p : n->parents)
          if (p->is_leaf) ++pending[p.get()];
    }
    for (auto& n : order) {  // outputs first; op results only
      if (n->freed)
        throw AutogradError(detail::concat("backward: reached the output of ", n->op,
                                   ", whose graph was already freed by a previous backward"));
      if (n->grad.defined() && n->backward_fn) {
        Tensor<T> g = std::move(n->grad);  // the backward may overwrite it (see on_backward)
        n->grad = Tensor<T>();
        try {
          n->backward_fn(g);
        } catch (const AutogradError& e) {  // say whose backward misbehaved: accumulate_grad only knows the input
          throw AutogradError(detail::concat("backward of ", n->op, ": ", e.what()));
        }
      }
      n->grad = Tensor<T>();  // non-leaf gradients are not kept (torch's retain_grad is not offered)
      if (observer)
        for (auto& p : n->parents)
          if (p->is_leaf && --pending[p.get()] == 0) observer->gradient_ready(p);
      if (!retain_graph) {
        n->backward_fn = nullptr;
        n->parents.clear();
        n->freed = true;
        n.reset();  // its consumers ran and dropped it: unless a Var still holds it, its value is freed now
      }
    }
  }

  /// The node handle, for the engine and tests.
  const std::shared_ptr<detail::Node<T>>& node_ptr() const { return node_; }

 private:
  /// Records op and the inputs that require grad as parents (one allocation for the parent list, sized first).
  template <typename It>
  void link(It first, It last, const char* op) {
    node_->op = op;
    if (!is_grad_enabled()) return;
    std::size_t count = 0;
    for (It it = first; it != last; ++it) count += it->defined() && it->requires_grad();
    if (count == 0) return;
    node_->parents.reserve(count);
    for (It it = first; it != last; ++it)
      if (it->defined() && it->requires_grad()) node_->parents.push_back(it->node_);
    node_->requires_grad = true;
    node_->is_leaf = false;
  }

  detail::Node<T>& node(const char* fn) const {
    if (!node_) throw_undefined(fn);
    return *node_;
  }
  // Out of line: the accessors above run for every op, and the message is built only on this path.
  [[noreturn, gnu::noinline, gnu::cold]] static void throw_undefined(const char* fn) {
    throw AutogradError(detail::concat(fn, ": the Var is undefined (default-constructed: no value, no graph node); ",
                                       "expected a Var made from a tensor or returned by an op"));
  }

  static void accumulate_into(const std::shared_ptr<detail::Node<T>>& n, Tensor<T>&& g);

  /// The op results reachable from this one through parents, each after all of its consumers (reverse post-order
  /// of an iterative depth-first search).
  detail::NodeList<T> topological_order() const {
    // Owning pointers: freeing a node's parents during backward must not destroy nodes still to be visited.
    detail::NodeList<T> post;
    // Leaves are left out: backward runs nothing for them, and other threads' backward passes may be visiting
    // the same leaves, so their marks are not touched.
    if (node_->is_leaf) return post;
    using Entry = std::pair<detail::NodePtr<T>, std::size_t>;
    std::vector<Entry, detail::PoolAllocator<Entry>> stack;
    stack.emplace_back(node_, 0);
    node_->visit_mark = true;
    while (!stack.empty()) {
      auto& top = stack.back();
      if (top.second < top.first->parents.size()) {
        const std::shared_ptr<detail::Node<T>>& p = top.first->parents[top.second++];
        if (!p->is_leaf && !p->visit_mark) {
          p->visit_mark = true;
          stack.emplace_back(p, 0);  // may reallocate: 'top' is not used after this
        }
      } else {
        post.push_back(std::move(top.first));
        stack.pop_back();
      }
    }
    for (auto& n : post) n->visit_mark = false;
    std::reverse(post.begin(), post.end());
    return post;
  }

  std::shared_ptr<detail::Node<T>> node_;
};

/// Runs the backward passes of several threads as numbered parts whose leaf gradients are added in part order,
/// whatever order the threads finish in: two runs give the same bits. A thread makes its part's contributions
/// inside a Part scope (they are held, summed per leaf in the order that thread made them); finish(), on one
/// thread after every part, adds part 0's sums into the leaves, then part 1's, and so on. Holds at most one
/// gradient per leaf and part (parts times the gradients' memory); the leaves must outlive finish().
template <typename T>
class PartGradients {
 public:
  explicit PartGradients(Index parts) : slots_(static_cast<std::size_t>(check_parts(parts))) {}

  /// The calling thread's contributions go to part `part` while this lives.
  class Part : detail::ScopedValue<detail::PartSlot<T>*> {
   public:
    Part(PartGradients& owner, Index part)
        : detail::ScopedValue<detail::PartSlot<T>*>(detail::thread_current<detail::PartSlot<T>>(), &owner.slot(part)) {}
  };

  Part part(Index part) { return Part(*this, part); }
  Index parts() const { return static_cast<Index>(slots_.size()); }

  /// Adds the held gradients into their leaves, part by part in order, and empties the parts.
  void finish() {
    for (auto& s : slots_) {
      for (auto& [node, g] : s.held) node->accumulate(std::move(g));
      s.held.clear();
      s.index.clear();
    }
  }

 private:
  static Index check_parts(Index parts) {
    if (parts < 1) throw ValueError(detail::concat("PartGradients: parts is ", parts, ", expected at least 1"));
    return parts;
  }
  detail::PartSlot<T>& slot(Index part) {
    if (part < 0 || part >= parts())
      throw ValueError(detail::concat("PartGradients::part: part is ", part, ", expected 0 <= part < ", parts()));
    return slots_[static_cast<std::size_t>(part)];
  }

  std::vector<detail::PartSlot<T>> slots_;
};

namespace detail {
/// One part's held leaf gradients, in first-arrival order, and where each leaf's sum is.
template <typename T>
struct PartSlot {
  std::vector<std::pair<std::shared_ptr<Node<T>>, Tensor<T>>> held;
  std::unordered_map<Node<T>*, std::size_t> index;

  void add(const std::shared_ptr<Node<T>>& leaf, Tensor<T>&& g) {
    if (g.shape() != leaf->value.shape()) {
      leaf->accumulate(std::move(g));  // throws the shape error
      return;
    }
    auto [it, inserted] = index.emplace(leaf.get(), held.size());
    if (inserted)
      held.emplace_back(leaf, g.is_unique() ? std::move(g) : g.clone());
    else
      held[it->second].second += g;
  }
};
}  // namespace detail

template <typename T>
void Var<T>::accumulate_into(const std::shared_ptr<detail::Node<T>>& n, Tensor<T>&& g) {
  if (!n) throw_undefined("Var::accumulate_grad");
  detail::PartSlot<T>* slot = n->is_leaf ? detail::thread_current<detail::PartSlot<T>>() : nullptr;
  if (slot)
    slot->add(n, std::move(g));
  else
    n->accumulate(std::move(g));
}

/// (name, parameter) pairs under PyTorch's dotted state-dict names, as a module's named_parameters() returns them
/// and optimizers take them.
template <typename T>
using NamedParameters = std::vector<std::pair<std::string, Var<T>>>;

}  // namespace eigenformer
