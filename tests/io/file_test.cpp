#include "eigenformer/io/file.hpp"

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "eigenformer/io/safetensors.hpp"
#include "support/test_support.hpp"

#if defined(__unix__)
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

using namespace eigenformer;

namespace file_test {

namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(EIGENFORMER_TEST_TMP_DIR) / ("file_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

constexpr io::WriteStage kStages[] = {io::WriteStage::created, io::WriteStage::written, io::WriteStage::synced,
                                      io::WriteStage::renamed, io::WriteStage::finished};

io::WriteStage g_stop_at = io::WriteStage::created;

/// The two kinds of files the library writes: text (configs, metrics, trainer state, vocabularies, plots) and
/// safetensors (weights, optimizer state).
void write_text(const fs::path& p, const std::string& text) { io::write_text_file_atomically(p, text); }
void write_tensors(const fs::path& p, float value) {
  io::save_safetensors<float>(p, {{"w", Tensor<float>::full({64, 64}, value)}});
}

struct Kind {
  const char* name;
  void (*write_old)(const fs::path&);
  void (*write_new)(const fs::path&);
};
const Kind kKinds[] = {
    {"text", [](const fs::path& p) { write_text(p, "old\n"); }, [](const fs::path& p) { write_text(p, "new\n"); }},
    {"safetensors", [](const fs::path& p) { write_tensors(p, 1.0f); }, [](const fs::path& p) { write_tensors(p, 2.0f); }},
};

}  // namespace

TEST(AtomicFile, WritesReplacesAndLeavesNoTemporary) {
  const fs::path dir = fresh_dir("basic");
  io::write_text_file_atomically(dir / "a.txt", "one");
  io::write_text_file_atomically(dir / "a.txt", "two");
  io::write_text_file_atomically(dir / "empty.txt", "");
  EXPECT_EQ(slurp(dir / "a.txt"), "two");
  EXPECT_EQ(slurp(dir / "empty.txt"), "");
  EXPECT_EQ(names_in(dir), (std::vector<std::string>{"a.txt", "empty.txt"}));
  EXPECT_EQ(io::read_text_file(dir / "a.txt"), "two");
  EXPECT_THROW_WITH(io::read_text_file(dir / "missing.txt", "load"), IoError, {"load", "missing.txt", "cannot open"});
  EXPECT_THROW_WITH(io::write_text_file_atomically(dir / "no" / "such" / "dir.txt", "x", "save"), IoError,
                    {"save", "dir.txt", "No such file or directory"});
  EXPECT_THROW_WITH(io::write_text_file_atomically(fs::path(), "x", "save"), IoError, {"save", "names no file"});
}

TEST(AtomicFile, AFailureAtAnyStageLeavesThePreviousFile) {
  // A hook that throws at each stage before the rename stands for any failure there (a full disk, an error in the
  // caller's writer): the previous file stays and the temporary file is removed.
  for (const Kind& kind : kKinds)
    for (io::WriteStage stage : {io::WriteStage::created, io::WriteStage::written, io::WriteStage::synced}) {
      const fs::path dir = fresh_dir(std::string("throw_") + kind.name);
      const fs::path target = dir / "file";
      kind.write_old(target);
      const std::string before = slurp(target);
      g_stop_at = stage;
      io::detail::write_hook() = [](io::WriteStage s, const fs::path&) {
        if (s == g_stop_at) throw std::runtime_error("injected");
      };
      EXPECT_THROW(kind.write_new(target), std::runtime_error) << kind.name << " " << static_cast<int>(stage);
      io::detail::write_hook() = nullptr;
      EXPECT_EQ(slurp(target), before) << kind.name << " " << static_cast<int>(stage);
      EXPECT_EQ(names_in(dir), (std::vector<std::string>{"file"})) << kind.name;
    }
  // A writer that reports failure: IoError, nothing replaced.
  const fs::path dir = fresh_dir("writer_fails");
  io::write_text_file_atomically(dir / "f", "old");
  EXPECT_THROW_WITH(io::write_file_atomically(dir / "f", [](std::FILE*) { return false; }, "save"), IoError,
                    {"save", "cannot write", "any previous file is unchanged"});
  EXPECT_EQ(slurp(dir / "f"), "old");
  EXPECT_EQ(names_in(dir), (std::vector<std::string>{"f"}));
}

#if defined(__unix__)
TEST(AtomicFile, AProcessKilledAtAnyStageLeavesTheOldOrTheNewFileWhole) {
  // fork + SIGKILL at each stage of each kind of write: the target then holds the old bytes (before the rename) or
  // the new ones (from the rename on), never a mix; a killed write may leave a temporary file, which
  // remove_stale_temporaries clears.
  for (const Kind& kind : kKinds)
    for (io::WriteStage stage : kStages) {
      const fs::path dir = fresh_dir(std::string("kill_") + kind.name);
      const fs::path target = dir / "file";
      kind.write_old(target);
      const std::string before = slurp(target);
      const fs::path reference = dir / "reference";
      kind.write_new(reference);
      const std::string after = slurp(reference);
      fs::remove(reference);
      g_stop_at = stage;
      const pid_t child = fork();
      ASSERT_GE(child, 0);
      if (child == 0) {
        io::detail::write_hook() = [](io::WriteStage s, const fs::path&) {
          if (s == g_stop_at) raise(SIGKILL);
        };
        kind.write_new(target);
        _exit(0);  // not reached
      }
      int status = 0;
      ASSERT_EQ(waitpid(child, &status, 0), child);
      ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << kind.name << " " << static_cast<int>(stage);
      const std::string got = slurp(target);
      const bool replaced = stage == io::WriteStage::renamed || stage == io::WriteStage::finished;
      EXPECT_EQ(got, replaced ? after : before) << kind.name << " stage " << static_cast<int>(stage);
      const std::vector<std::string> removed = io::remove_stale_temporaries(dir);
      EXPECT_EQ(removed.size(), stage == io::WriteStage::created || stage == io::WriteStage::written ||
                                        stage == io::WriteStage::synced
                                    ? 1u
                                    : 0u)
          << kind.name << " stage " << static_cast<int>(stage);
      EXPECT_EQ(names_in(dir), (std::vector<std::string>{"file"}));
    }
}

TEST(AtomicFile, ADiskThatFillsUpLeavesThePreviousFile) {
  // A file size limit makes write() fail as a full disk does (EFBIG instead of ENOSPC), in a child process.
  const fs::path dir = fresh_dir("full");
  const fs::path target = dir / "weights.safetensors";
  write_tensors(target, 1.0f);
  const std::string before = slurp(target);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit{4096, 4096};
    setrlimit(RLIMIT_FSIZE, &limit);
    try {
      write_tensors(target, 2.0f);
    } catch (const IoError& e) {
      _exit(std::string(e.what()).find("File too large") != std::string::npos ? 3 : 4);
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3);  // IoError naming the reason
  EXPECT_EQ(slurp(target), before);
  EXPECT_EQ(names_in(dir), (std::vector<std::string>{"weights.safetensors"}));
}
#endif

TEST(AtomicFile, StaleTemporariesAreRecognizedByName) {
  const fs::path dir = fresh_dir("stale");
  std::ofstream(dir / "model.safetensors.tmp.0123456789abcdef") << "x";
  std::ofstream(dir / "model.safetensors.tmp.notahexnumber!!") << "x";
  std::ofstream(dir / "notes.tmp") << "x";
  std::ofstream(dir / "model.safetensors") << "x";
  EXPECT_EQ(io::remove_stale_temporaries(dir), (std::vector<std::string>{"model.safetensors.tmp.0123456789abcdef"}));
  EXPECT_EQ(names_in(dir), (std::vector<std::string>{"model.safetensors", "model.safetensors.tmp.notahexnumber!!",
                                                     "notes.tmp"}));
  EXPECT_TRUE(io::remove_stale_temporaries(dir / "absent").empty());
}

}  // namespace file_test
