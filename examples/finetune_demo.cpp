// The toy fine-tuning demo of the "Using Transformers" lecture notes, in C++: the MiniTransformerClassifier
// (vocab 50, d_model 32, 4 heads, 2 post-norm encoder layers, feed-forward 64, dropout 0.1, CLS -> LayerNorm ->
// Linear(32, 2)) trained with Adam (lr 1e-3) and cross-entropy on two sequences, printing one line per epoch.
//
// Run: build/release/examples/finetune_demo [--epochs N] [--lr X] [--dropout P] [--seed S]
//                                           [--init FILE.safetensors] [--save FILE.safetensors]
// --init loads the PyTorch model's state_dict() (same names) so that, with --dropout 0, the losses match PyTorch's.
#include <algorithm>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <string>

#include <eigenformer/eigenformer.hpp>

namespace {

struct Args {
  int epochs = 5;
  float lr = 1e-3f;
  float dropout = 0.1f;
  std::uint64_t seed = 0;
  std::string init, save;
};

constexpr const char* kUsage =
    "usage: finetune_demo [--epochs N] [--lr X] [--dropout P] [--seed S] [--init FILE] [--save FILE]\n";

[[noreturn]] void usage_error(const std::string& problem) {
  std::cerr << "finetune_demo: " << problem << "\n" << kUsage;
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      std::cout << "finetune_demo: trains the seed demo's MiniTransformerClassifier on two sequences\n" << kUsage;
      std::exit(0);
    }
    static const char* const kFlags[] = {"--epochs", "--lr", "--dropout", "--seed", "--init", "--save"};
    if (std::find(std::begin(kFlags), std::end(kFlags), flag) == std::end(kFlags)) usage_error("unknown option " + flag);
    if (i + 1 >= argc) usage_error("missing value after " + flag);
    const std::string v = argv[++i];
    try {
      std::size_t used = v.size();
      if (flag == "--epochs") a.epochs = std::stoi(v, &used);
      else if (flag == "--lr") a.lr = std::stof(v, &used);
      else if (flag == "--dropout") a.dropout = std::stof(v, &used);
      else if (flag == "--seed") a.seed = std::stoull(v, &used);
      else if (flag == "--init") a.init = v;
      else a.save = v;
      if (used != v.size()) throw std::invalid_argument(v);
    } catch (const std::logic_error&) {
      usage_error("bad value for " + flag + ": " + v);
    }
  }
  if (a.epochs < 0) usage_error("--epochs must be >= 0");
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace eigenformer;
  const Args args = parse(argc, argv);
  try {
    nn::EncoderClassifier<float>::Options opt;  // defaults: the seed's MiniTransformerClassifier
    opt.encoder.layer.dropout = args.dropout;
    opt.seed = args.seed;
    nn::EncoderClassifier<float> model(opt);
    if (!args.init.empty()) io::load_state_dict(model, args.init);
    optim::Adam<float>::Options adam;
    adam.lr = args.lr;
    optim::Adam<float> optimizer(model.named_parameters(), adam);

    const auto inputs = Tensor<std::int64_t>::from({1, 5, 2, 9, 3, 7, 8, 0}, {2, 4});  // (B, T) = (2, 4)
    const auto labels = Tensor<std::int64_t>::from({1, 0}, {2});
    model.train();
    std::cout << std::fixed;
    for (int epoch = 1; epoch <= args.epochs; ++epoch) {
      const Var<float> logits = model.forward(inputs);  // (2, 2)
      const Var<float> loss = cross_entropy(logits, labels);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      const Tensor<std::int64_t> preds = argmax(logits.value(), -1);
      float correct = 0;
      for (Index i = 0; i < labels.numel(); ++i) correct += preds[i] == labels[i] ? 1.0f : 0.0f;
      std::cout << "epoch " << epoch << " | loss " << std::setprecision(4) << loss.item() << " | acc "
                << std::setprecision(3) << correct / static_cast<float>(labels.numel()) << std::endl;
    }
    if (!args.save.empty()) {
      io::save_state_dict(model, args.save);
      std::cout << "saved " << args.save << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "finetune_demo: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
