#include "eigenformer/train/checkpoint.hpp"

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "support/test_support.hpp"

using namespace eigenformer;
using namespace eigenformer::train;

namespace checkpoint_test {

namespace {

RunConfig config_of(std::vector<std::string> labels, Index max_length) {
  RunConfig c;
  c.labels = std::move(labels);
  c.max_length = max_length;
  return c;
}

}  // namespace

TEST(CheckRunFolder, AcceptsPartsThatBelongTogether) {
  const RunFolder run{"runs/spam"};
  ModelLimits m;
  m.vocab_size = 160;
  m.classes = 2;
  m.max_length = 64;
  EXPECT_NO_THROW(check_run_folder(run, config_of({"ham", "spam"}, 64), run.vocab(), 160, m));
  EXPECT_NO_THROW(check_run_folder(run, config_of({"ham", "spam"}, 32), run.vocab(), 160, m));
  EXPECT_NO_THROW(check_run_folder(run, config_of({}, 64), run.vocab(), 160, m));  // a language model: no labels
  EXPECT_NO_THROW(check_run_folder(run, config_of({"a", "b", "c"}, 9999), run.vocab(), 7, ModelLimits()));
}

TEST(CheckRunFolder, NamesTheFilesThatDisagree) {
  const RunFolder run{"runs/spam"};
  ModelLimits m;
  m.vocab_size = 160;
  m.classes = 2;
  m.max_length = 512;
  // A vocab.txt of 100 lines beside a model of 160 tokens: every token past the first hundred would be misread.
  EXPECT_THROW_WITH(check_run_folder(run, config_of({"ham", "spam"}, 64), run.vocab(), 100, m), IoError,
                    {"check_run_folder", run.vocab().string(), "holds 100 tokens", "embeds 160",
                     run.model().string()});
  EXPECT_THROW_WITH(check_run_folder(run, config_of({"ham", "spam"}, 64), run.vocab(), 161, m), IoError,
                    {"holds 161 tokens", "embeds 160"});
  EXPECT_THROW_WITH(check_run_folder(run, config_of({"a", "b", "c"}, 600), run.vocab(), 100, m), IoError,
                    {"holds 100 tokens", run.config().string() + " lists 3 labels", "has 2 outputs",
                     "max_length is 600", "holds 512"});
}

TEST(FolderState, ARunIsAFolderWithACheckpointOrARunsConfig) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(EIGENFORMER_TEST_TMP_DIR) / "checkpoint_test_folder_state";
  fs::remove_all(dir);
  EXPECT_EQ(folder_state(dir), FolderState::absent_or_empty);
  fs::create_directories(dir);
  EXPECT_EQ(folder_state(dir), FolderState::absent_or_empty);
  std::ofstream(dir / "notes.txt") << "mine";
  EXPECT_EQ(folder_state(dir), FolderState::other);
  EXPECT_EQ(folder_state(dir / "notes.txt"), FolderState::other);  // a file
  // A config.json of something else is the user's, not a run's.
  std::ofstream(dir / "config.json") << "{\"theme\": \"dark\"}";
  EXPECT_EQ(folder_state(dir), FolderState::other);
  std::ofstream(dir / "config.json") << "not json";
  EXPECT_EQ(folder_state(dir), FolderState::other);
  save_run_config(dir / "config.json", config_of({"ham", "spam"}, 64));  // a run of an earlier version
  EXPECT_EQ(folder_state(dir), FolderState::run);
  fs::remove(dir / "config.json");
  commit_checkpoint(RunFolder{dir}, 1);
  EXPECT_EQ(folder_state(dir), FolderState::run);
}

}  // namespace checkpoint_test
