// Crash consistency of fit()'s run folder: a small run (dropout on, gradient accumulation with a short last group,
// two epochs) is killed with SIGKILL at every stage of every atomic write it makes (io::detail::write_hook counts
// them), or meets a failing write there (an exception, or a full disk made by RLIMIT_FSIZE); it is then resumed and
// must end bit-identical to the uninterrupted run: weights, model.safetensors, the current checkpoint, metrics.csv,
// config.json, vocab.txt, and no other file (no temporary, no old checkpoint, no staging folder).
//
// A killed run is a clean process: the test binary itself, started with posix_spawn and a --gtest_filter naming the
// child test below, which reads its kill point from the environment (a fork that went on running OpenMP code would
// not be safe).
#include "eigenformer/train/fit.hpp"

#include "eigenformer/nn/encoder_classifier.hpp"

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "support/test_support.hpp"

#if defined(__linux__)
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#define EIGENFORMER_FIT_CRASH_TEST 1
extern char** environ;
#endif

using namespace eigenformer;
using namespace eigenformer::train;

namespace fit_crash_test {

namespace {

namespace fs = std::filesystem;
using Model = nn::EncoderClassifier<float>;

// The child's instructions: the run folder, the 1-based write-hook call to act at, and what to do there.
constexpr const char* kDirVar = "EIGENFORMER_FIT_CRASH_DIR";
constexpr const char* kAtVar = "EIGENFORMER_FIT_CRASH_AT";
constexpr const char* kModeVar = "EIGENFORMER_FIT_CRASH_MODE";  // "kill" or "full_disk"
constexpr const char* kOverwriteVar = "EIGENFORMER_FIT_CRASH_OVERWRITE";  // "1": the run replaces another one

// The child's exit statuses when it is not killed.
constexpr int kChildCompleted = 10;       // the run ended without reaching its kill point
constexpr int kChildFullDisk = 11;        // a write failed with "File too large", as the full disk should make it
constexpr int kChildOtherError = 12;      // anything else

/// Token sequences of 4-9 noise tokens (3..19) with a marker (1 or 2) saying the label; 0 is padding.
data::Batcher corpus(Index n, std::uint64_t seed, Index batch_size, bool shuffle) {
  std::mt19937_64 gen(seed);
  std::vector<std::vector<std::int64_t>> seqs;
  std::vector<std::int64_t> labels;
  for (Index i = 0; i < n; ++i) {
    std::vector<std::int64_t> s(static_cast<std::size_t>(4 + gen() % 6));
    for (auto& t : s) t = static_cast<std::int64_t>(3 + gen() % 17);
    const auto label = static_cast<std::int64_t>(gen() % 2);
    s[gen() % s.size()] = label == 1 ? 1 : 2;
    seqs.push_back(std::move(s));
    labels.push_back(label);
  }
  data::Batcher::Options o;
  o.batch_size = batch_size;
  o.shuffle = shuffle;
  o.seed = seed;
  return data::Batcher(std::move(seqs), std::move(labels), o);
}

Model::Options tiny_model(std::uint64_t seed) {
  Model::Options o;
  o.vocab_size = 20;
  o.max_len = 12;
  o.encoder.layer.d_model = 8;
  o.encoder.layer.nhead = 2;
  o.encoder.num_layers = 1;
  o.encoder.layer.dim_feedforward = 16;
  o.encoder.layer.dropout = 0.2f;
  o.positional = nn::PositionalKind::learned;
  o.padding_idx = 0;
  o.seed = seed;
  return o;
}

/// The run every case makes: 10 batches per epoch in optimizer steps of 3, 3, 3 and 1 batches, two epochs.
/// resume is set from the start, as a user who reruns the same command after a crash would have it.
FitResult run(const fs::path& dir, std::vector<Tensor<float>>* weights = nullptr, bool overwrite = false,
              std::uint64_t seed = 7) {
  static const data::Batcher train = corpus(40, 1, 4, true), valid = corpus(12, 2, 6, false);
  Model model(tiny_model(seed));
  FitOptions o;
  o.epochs = 2;
  o.lr = 1e-2;
  o.accumulation_steps = 3;
  o.restore_best = false;  // the last epoch's weights in memory; the best one's in model.safetensors
  o.run_dir = dir;
  o.resume = !overwrite;
  o.overwrite = overwrite;
  o.config.model = io::options_to_json(model.options);
  o.config.labels = {"no", "yes"};
  o.config.max_length = 12;
  o.fingerprint = {{"seed", seed}};
  o.save_tokenizer = [](const fs::path& d) {
    std::string vocab;
    for (int i = 0; i < 20; ++i) vocab += "t" + std::to_string(i) + "\n";
    io::write_text_file_atomically(d / "vocab.txt", vocab, "save_tokenizer");
  };
  const FitResult r = fit(model, train, valid, o);
  if (weights) {
    weights->clear();
    for (const auto& np : model.named_parameters()) weights->push_back(np.second.value().clone());
  }
  return r;
}

// ------------------------------------------------------------------------------------------ write-hook control

/// One call of the write hook: the stage and the file (its folder's name and its own; staging folders by kind).
struct HookCall {
  io::WriteStage stage;
  std::string file;
};

long g_calls = 0;
long g_act_at = 0;  // the call to act at; 0 = never
enum class Action { record, kill, raise, full_disk } g_action = Action::record;
std::vector<HookCall> g_log;

const char* stage_name(io::WriteStage s) {
  switch (s) {
    case io::WriteStage::created: return "created";
    case io::WriteStage::written: return "written";
    case io::WriteStage::synced: return "synced";
    case io::WriteStage::renamed: return "renamed";
    case io::WriteStage::finished: return "finished";
  }
  return "?";
}

std::string describe(const fs::path& target) {
  std::string folder = target.parent_path().filename().string();
  const std::size_t at = folder.find(".new-");
  if (at != std::string::npos) folder = "<staged run>";
  return folder + "/" + target.filename().string();
}

void hook(io::WriteStage stage, const fs::path& target) {
  ++g_calls;
  if (g_action == Action::record) g_log.push_back({stage, describe(target)});
  if (g_calls != g_act_at) return;
  switch (g_action) {
    case Action::kill:
      std::raise(SIGKILL);
      break;
    case Action::raise:
      throw IoError("injected: no space left on device");
    case Action::full_disk: {
#ifdef EIGENFORMER_FIT_CRASH_TEST
      std::signal(SIGXFSZ, SIG_IGN);  // write() then fails with EFBIG instead of the process being killed
      rlimit limit{};
      getrlimit(RLIMIT_FSIZE, &limit);
      limit.rlim_cur = 1;  // every later write of more than one byte fails, as on a full disk
      setrlimit(RLIMIT_FSIZE, &limit);
#endif
      break;
    }
    case Action::record:
      break;
  }
}

/// Installs the hook for the scope with a fresh count.
struct HookScope {
  HookScope(Action action, long at) {
    g_calls = 0;
    g_act_at = at;
    g_action = action;
    g_log.clear();
    io::detail::write_hook() = &hook;
  }
  ~HookScope() { io::detail::write_hook() = nullptr; }
};

// ------------------------------------------------------------------------------------------ run folder snapshots

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// metrics.csv with its wall-time columns (seconds, tokens_per_second) blanked: the rest must match bit for bit.
std::string mask_metrics_csv(const std::string& text) {
  std::istringstream in(text);
  std::string out, line;
  std::vector<std::size_t> timed;
  for (bool header = true; std::getline(in, line); header = false) {
    std::vector<std::string> fields;
    std::istringstream f(line);
    for (std::string x; std::getline(f, x, ',');) fields.push_back(x);
    for (std::size_t i = 0; i < fields.size(); ++i) {
      if (header && (fields[i] == "seconds" || fields[i] == "tokens_per_second")) timed.push_back(i);
      if (!header && std::find(timed.begin(), timed.end(), i) != timed.end()) fields[i] = "*";
      out += (i ? "," : "") + fields[i];
    }
    out += "\n";
  }
  return out;
}

/// trainer_state.json with the history's wall times blanked.
std::string mask_trainer_state(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text);
  for (auto& r : j.at("history")) r["seconds"] = r["tokens_per_second"] = "*";
  return j.dump(1);
}

/// manifest.json with the size and checksum of trainer_state.json (which holds wall times) blanked.
std::string mask_manifest(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text);
  j.at("files").at("trainer_state.json") = "*";
  return j.dump(1);
}

/// Every file of a run folder (relative path -> bytes, wall times blanked), plus the folder's siblings that a run
/// may leave (staging folders), which must not exist.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_directory()) continue;
    const std::string rel = fs::relative(e.path(), dir).generic_string();
    std::string bytes = read_file(e.path());
    const std::string name = e.path().filename().string();
    if (name == "metrics.csv") bytes = mask_metrics_csv(bytes);
    if (name == "trainer_state.json") bytes = mask_trainer_state(bytes);
    if (name == "manifest.json") bytes = mask_manifest(bytes);
    files[rel] = std::move(bytes);
  }
  const std::string stem = dir.filename().string() + ".";
  for (const auto& e : fs::directory_iterator(dir.parent_path()))
    if (e.path().filename().string().rfind(stem, 0) == 0) files["../" + e.path().filename().string()] = "";
  return files;
}

/// Lists the differences between two snapshots ("" when equal).
std::string differences(const std::map<std::string, std::string>& want, const std::map<std::string, std::string>& got) {
  std::string out;
  for (const auto& [name, bytes] : want) {
    const auto it = got.find(name);
    if (it == got.end())
      out += " missing " + name + ";";
    else if (it->second != bytes)
      out += " " + name + " differs;";
  }
  for (const auto& [name, bytes] : got)
    if (!want.count(name)) out += " unexpected " + name + ";";
  return out;
}

bool same_weights(const std::vector<Tensor<float>>& a, const std::vector<Tensor<float>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!a[i].equal(b[i])) return false;
  return true;
}

/// Where the runs go: a memory file system when there is one, whose fsync costs nothing (a kill, unlike a power
/// loss, does not depend on fsync), else the build tree. One folder per test process.
fs::path base_dir() {
  static const fs::path base = [] {
    std::error_code ec;
    const std::string name = "eigenformer_fit_crash_test_" + std::to_string(
#ifdef EIGENFORMER_FIT_CRASH_TEST
        static_cast<long>(getpid())
#else
        0L
#endif
    );
    fs::path b = fs::path("/dev/shm") / name;
    if (!fs::is_directory("/dev/shm", ec) || !fs::create_directories(b, ec) || ec)
      b = fs::path(EIGENFORMER_TEST_TMP_DIR) / name;
    fs::create_directories(b);
    return b;
  }();
  return base;
}

/// Removes the test process's folders at exit.
struct BaseDirCleanup {
  ~BaseDirCleanup() {
    std::error_code ec;
    if (!std::getenv(kDirVar)) fs::remove_all(base_dir(), ec);
  }
};

fs::path fresh_dir(const std::string& name) {
  const fs::path base = base_dir();
  static BaseDirCleanup cleanup;  // constructed after base_dir()'s folder name, so destroyed before it
  const fs::path dir = base / name;
  for (const auto& e : fs::directory_iterator(base)) {  // the folder and any staging folder beside it
    const std::string n = e.path().filename().string();
    if (n == name || n.rfind(name + ".", 0) == 0) fs::remove_all(e.path());
  }
  return dir;
}

/// The uninterrupted run: its files, its final weights and the write-hook calls it makes.
struct Reference {
  std::map<std::string, std::string> files;
  std::vector<Tensor<float>> weights;
  std::vector<HookCall> calls;
};

Reference reference(const std::string& name, const fs::path* replaced = nullptr) {
  Reference ref;
  const fs::path dir = fresh_dir(name);
  if (replaced) fs::copy(*replaced, dir, fs::copy_options::recursive);
  {
    HookScope scope(Action::record, 0);
    run(dir, &ref.weights, replaced != nullptr);
    ref.calls = g_log;
  }
  ref.files = snapshot(dir);
  return ref;
}

/// The reference of the cases that start from an empty folder (computed once).
const Reference& plain_reference() {
  static const Reference ref = reference("reference");
  return ref;
}

std::string point_name(const Reference& ref, long k) {
  const HookCall& c = ref.calls[static_cast<std::size_t>(k - 1)];
  return "write-hook call " + std::to_string(k) + " of " + std::to_string(ref.calls.size()) + " (" +
         stage_name(c.stage) + " of " + c.file + ")";
}

#ifdef EIGENFORMER_FIT_CRASH_TEST
/// Runs the child test in a new process of this binary; returns its wait status.
int run_child(const fs::path& dir, const char* mode, long at, bool overwrite) {
  static const std::string self = fs::read_symlink("/proc/self/exe").string();
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  env_strings.push_back(std::string(kDirVar) + "=" + dir.string());
  env_strings.push_back(std::string(kAtVar) + "=" + std::to_string(at));
  env_strings.push_back(std::string(kModeVar) + "=" + mode);
  env_strings.push_back(std::string(kOverwriteVar) + "=" + (overwrite ? "1" : "0"));
  std::vector<char*> env;
  for (std::string& s : env_strings) env.push_back(s.data());
  env.push_back(nullptr);
  std::string filter = "--gtest_filter=FitCrashChild.*";
  std::string disabled = "--gtest_also_run_disabled_tests";
  std::string arg0 = self;
  char* argv[] = {arg0.data(), filter.data(), disabled.data(), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, self.c_str(), &actions, nullptr, argv, env.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return status;
}

bool killed(int status) { return status >= 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL; }
int exit_code(int status) { return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
#endif

/// Resumes the run in dir in this process (no hook) and compares it with the reference.
void expect_resume_matches(const Reference& ref, const fs::path& dir, const std::string& what, bool overwrite = false) {
  std::vector<Tensor<float>> weights;
  try {
    run(dir, &weights, overwrite);
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": the rerun failed: " << e.what();
    return;
  }
  EXPECT_TRUE(same_weights(ref.weights, weights)) << what << ": the final weights differ";
  const std::string diff = differences(ref.files, snapshot(dir));
  EXPECT_TRUE(diff.empty()) << what << ":" << diff;
}

}  // namespace

// The child process of the tests below (disabled: it runs only when they start it, with its instructions in the
// environment). It makes the run and acts at its write-hook call; its exit status says how the run ended.
TEST(FitCrashChild, DISABLED_RunsUntilItsPoint) {
  const char* dir = std::getenv(kDirVar);
  const char* at = std::getenv(kAtVar);
  const char* mode = std::getenv(kModeVar);
  const char* overwrite = std::getenv(kOverwriteVar);
  if (!dir || !at || !mode) GTEST_SKIP() << "runs only as the child process of the FitCrash tests";
  HookScope scope(std::string(mode) == "kill" ? Action::kill : Action::full_disk, std::atol(at));
  try {
    run(dir, nullptr, overwrite && std::string(overwrite) == "1");
  } catch (const IoError& e) {
    const bool full = std::string(e.what()).find("File too large") != std::string::npos;
    if (!full) std::fprintf(stderr, "fit_crash_test child: %s\n", e.what());
    std::_Exit(full ? kChildFullDisk : kChildOtherError);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fit_crash_test child: %s\n", e.what());
    std::_Exit(kChildOtherError);
  }
  std::_Exit(kChildCompleted);
}

TEST(FitCrash, AnExceptionAtAnyWriteStageThenAResumeEqualsTheUninterruptedRun) {
  const Reference& ref = plain_reference();
  ASSERT_GT(ref.calls.size(), 40u);  // ~17 files of 5 stages each
  const fs::path dir = fresh_dir("raise");
  for (long k = 1; k <= static_cast<long>(ref.calls.size()); ++k) {
    fresh_dir("raise");
    {
      HookScope scope(Action::raise, k);
      EXPECT_THROW_WITH(run(dir), IoError, {"injected"});
    }
    expect_resume_matches(ref, dir, "an exception at " + point_name(ref, k));
    if (::testing::Test::HasFailure()) break;  // one failing point says enough
  }
}

#ifdef EIGENFORMER_FIT_CRASH_TEST
TEST(FitCrash, AKillAtAnyWriteStageThenAResumeEqualsTheUninterruptedRun) {
  const Reference& ref = plain_reference();
  const fs::path dir = fresh_dir("kill");
  for (long k = 1; k <= static_cast<long>(ref.calls.size()); ++k) {
    fresh_dir("kill");
    const int status = run_child(dir, "kill", k, false);
    ASSERT_TRUE(killed(status)) << point_name(ref, k) << ": the child was not killed (status " << status << ")";
    if (fs::exists(dir)) {  // a run folder in place always names a whole checkpoint
      EXPECT_NO_THROW(current_checkpoint(RunFolder{dir})) << point_name(ref, k);
    }
    expect_resume_matches(ref, dir, "a kill at " + point_name(ref, k));
    if (::testing::Test::HasFailure()) break;
  }
}

TEST(FitCrash, AKillOfAResumedRunThenAResumeEqualsTheUninterruptedRun) {
  // Two crashes: the first in epoch 1 (before and after the run folder takes its place), then one at every third
  // write-hook call of the resumed run (3 and the 5 stages of a write are coprime: every stage of every file).
  const Reference& ref = plain_reference();
  const fs::path dir = fresh_dir("twice");
  long first_checkpoint_done = 0;  // the call that makes epoch 1's checkpoint current (checkpoint.json renamed)
  for (std::size_t i = 0; i < ref.calls.size() && !first_checkpoint_done; ++i)
    if (ref.calls[i].stage == io::WriteStage::renamed && ref.calls[i].file == "<staged run>/checkpoint.json")
      first_checkpoint_done = static_cast<long>(i + 1);
  ASSERT_GT(first_checkpoint_done, 0);
  for (long first : {first_checkpoint_done - 2, first_checkpoint_done + 3}) {
    for (long k = first < first_checkpoint_done ? 1 : 2;; k += 3) {
      fresh_dir("twice");
      ASSERT_TRUE(killed(run_child(dir, "kill", first, false))) << point_name(ref, first);
      const int status = run_child(dir, "kill", k, false);
      if (exit_code(status) == kChildCompleted) break;  // past the resumed run's last write
      ASSERT_TRUE(killed(status)) << "second kill at call " << k << ": status " << status;
      expect_resume_matches(ref, dir,
                            "a kill at " + point_name(ref, first) + ", then at call " + std::to_string(k) + " of the resume");
      if (::testing::Test::HasFailure()) return;
    }
  }
}

TEST(FitCrash, AFullDiskAtAnyWriteThenAResumeEqualsTheUninterruptedRun) {
  // The disk fills up as a file is created: that write fails with the system's error (EFBIG here, ENOSPC on a real
  // disk), fit() throws IoError, and the run folder keeps its last checkpoint.
  const Reference& ref = plain_reference();
  const fs::path dir = fresh_dir("full");
  for (long k = 1; k <= static_cast<long>(ref.calls.size()); ++k) {
    if (ref.calls[static_cast<std::size_t>(k - 1)].stage != io::WriteStage::created) continue;
    fresh_dir("full");
    const int status = run_child(dir, "full_disk", k, false);
    ASSERT_EQ(exit_code(status), kChildFullDisk) << point_name(ref, k) << ": status " << status;
    expect_resume_matches(ref, dir, "a full disk at " + point_name(ref, k));
    if (::testing::Test::HasFailure()) break;
  }
}

TEST(FitCrash, AKilledOverwriteLeavesTheOldRunOrTheNewOneAndARerunEqualsTheUninterruptedRun) {
  // A run that replaces a finished one: until its first checkpoint the old run stays as it was; once it is in its
  // place, it is a valid run. Rerunning the same command (overwrite) then gives the uninterrupted result. Every
  // other write-hook call (2 and the 5 stages of a write are coprime: every stage is met).
  const fs::path old_dir = fresh_dir("old_run");
  run(old_dir, nullptr, false, 11);
  const std::map<std::string, std::string> old_files = snapshot(old_dir);
  const Reference ref = reference("reference_overwrite", &old_dir);
  const fs::path dir = fresh_dir("overwrite");
  for (long k = 1; k <= static_cast<long>(ref.calls.size()); k += 2) {
    fresh_dir("overwrite");
    fs::copy(old_dir, dir, fs::copy_options::recursive);
    const int status = run_child(dir, "kill", k, true);
    ASSERT_TRUE(killed(status)) << point_name(ref, k) << ": status " << status;
    // The folder holds the old run or the new one (if the kill fell between the two renames that swap them, the
    // next run puts one of them back first).
    train::detail::recover_staging_folders(dir);
    const std::map<std::string, std::string> now = snapshot(dir);
    if (now != old_files) {
      EXPECT_NO_THROW(current_checkpoint(RunFolder{dir})) << point_name(ref, k);
    }
    expect_resume_matches(ref, dir, "a kill of the replacing run at " + point_name(ref, k), true);
    if (::testing::Test::HasFailure()) break;
  }
}
#endif

TEST(FitCrash, AKillBetweenTheRenamesThatReplaceARunLeavesOneOfThem) {
  // publish_staged_run moves the old run aside, then the new one into place; recover_staging_folders, which every
  // run calls first, repairs a folder killed between the two.
  const fs::path a = fresh_dir("swap"), staged = a.parent_path() / "swap.new-0123456789abcdef",
                 old = a.parent_path() / "swap.old-0123456789abcdef";
  run(a, nullptr, false, 3);
  const fs::path b = fresh_dir("swap_new");
  run(b, nullptr, false, 4);
  const std::map<std::string, std::string> new_files = snapshot(b);
  // Killed between the renames: the old run is aside, the new one still staged.
  fs::rename(a, old);
  fs::rename(b, staged);
  train::detail::recover_staging_folders(a);
  EXPECT_EQ(differences(new_files, snapshot(a)), "");
  EXPECT_FALSE(fs::exists(old));
  EXPECT_FALSE(fs::exists(staged));
  // A staged folder without a checkpoint is not a run: the old one comes back.
  fs::rename(a, old);
  fs::create_directories(staged);
  std::ofstream(staged / "config.json") << "{}";
  train::detail::recover_staging_folders(a);
  EXPECT_EQ(differences(new_files, snapshot(a)), "");
  EXPECT_FALSE(fs::exists(staged));
}

}  // namespace fit_crash_test
