// A training run's folder and its checkpoints, written so that nothing is lost: a checkpoint is one unit (a folder
// of its own whose files a manifest lists with their sizes and checksums), made current by one atomic step (the
// pointer file checkpoint.json is replaced to name it), verified before it is loaded, and older checkpoints are
// removed only after a newer one is current. Every file goes through io::write_file_atomically. check_run_folder
// checks that the parts of a folder a model is loaded from belong together.
//
// A run folder holds
//   config.json        the run's configuration (train/run_config.hpp)
//   vocab.txt ...      the tokenizer's files (the caller's)
//   model.safetensors  the best epoch's weights, replaced atomically and only by a better epoch's
//   metrics.csv        one row per completed epoch (train/history.hpp)
//   checkpoint.json    names the current checkpoint: {"format": 1, "checkpoint": "checkpoints/epoch-3", "epoch": 3}
//   checkpoints/epoch-N/  model.safetensors (the weights at the end of epoch N), optimizer.safetensors,
//                         trainer_state.json, manifest.json (written last)
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "eigenformer/core/config.hpp"
#include "eigenformer/core/error.hpp"
#include "eigenformer/io/file.hpp"
#include "eigenformer/train/run_config.hpp"

namespace eigenformer::train {

/// The paths of a run folder's files.
struct RunFolder {
  std::filesystem::path dir;

  std::filesystem::path config() const { return dir / "config.json"; }
  std::filesystem::path vocab() const { return dir / "vocab.txt"; }
  std::filesystem::path model() const { return dir / "model.safetensors"; }
  std::filesystem::path metrics() const { return dir / "metrics.csv"; }
  std::filesystem::path pointer() const { return dir / "checkpoint.json"; }
  std::filesystem::path checkpoints() const { return dir / "checkpoints"; }
  /// The folder of epoch's checkpoint (1-based epoch).
  std::filesystem::path checkpoint(Index epoch) const {
    return checkpoints() / ("epoch-" + std::to_string(epoch));
  }
};

/// The files of one checkpoint folder.
struct CheckpointFiles {
  std::filesystem::path folder;
  std::filesystem::path model() const { return folder / "model.safetensors"; }
  std::filesystem::path optimizer() const { return folder / "optimizer.safetensors"; }
  std::filesystem::path trainer_state() const { return folder / "trainer_state.json"; }
  std::filesystem::path manifest() const { return folder / "manifest.json"; }
};

namespace detail {

using eigenformer::detail::concat;

/// A 64-bit checksum of bytes (four interleaved multiply-xorshift lanes over 8-byte words, then the tail): fast
/// enough to verify checkpoints of hundreds of MiB, and any change of a byte changes it with near certainty.
class Checksum {
 public:
  void update(const unsigned char* p, std::size_t n) {
    length_ += n;
    while (n > 0 && filled_ > 0) {  // complete a partial block first
      block_[filled_++] = *p++;
      --n;
      if (filled_ == sizeof(block_)) {
        absorb(block_);
        filled_ = 0;
      }
    }
    for (; n >= sizeof(block_); p += sizeof(block_), n -= sizeof(block_)) absorb(p);
    for (; n > 0; --n) block_[filled_++] = *p++;
  }
  std::uint64_t digest() const {
    std::uint64_t h = length_ * 0x9E3779B97F4A7C15ull;
    for (int l = 0; l < 4; ++l) h = mix(h ^ lanes_[l]);
    for (std::size_t i = 0; i < filled_; ++i) h = mix(h ^ (static_cast<std::uint64_t>(block_[i]) << (8 * (i % 8))));
    return h;
  }

 private:
  void absorb(const unsigned char* block) {
    for (int l = 0; l < 4; ++l) {
      std::uint64_t w;
      std::memcpy(&w, block + 8 * l, 8);
      lanes_[l] = mix(lanes_[l] ^ w);
    }
  }
  static std::uint64_t mix(std::uint64_t x) {
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 31;
    x *= 0x94D049BB133111EBull;
    return x ^ (x >> 29);
  }
  std::uint64_t lanes_[4] = {0x243F6A8885A308D3ull, 0x13198A2E03707344ull, 0xA4093822299F31D0ull,
                             0x082EFA98EC4E6C89ull};
  unsigned char block_[32] = {};
  std::size_t filled_ = 0;
  std::uint64_t length_ = 0;
};

inline std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace detail

/// A file's size and checksum as JSON ({"bytes": n, "checksum": "16 hex digits"}): what a manifest records and
/// what a resumed run compares its data files with. Throws IoError naming the file when it cannot be read.
inline nlohmann::json file_fingerprint(const std::filesystem::path& path, const char* fn = "file_fingerprint") {
  std::FILE* f = std::fopen(path.string().c_str(), "rb");
  if (!f)
    throw IoError(eigenformer::detail::concat(fn, ": cannot open '", path.string(), "': ", std::strerror(errno)));
  detail::Checksum sum;
  std::vector<unsigned char> buf(1 << 20);
  std::uint64_t bytes = 0;
  for (std::size_t n; (n = std::fread(buf.data(), 1, buf.size(), f)) > 0;) {
    sum.update(buf.data(), n);
    bytes += n;
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) throw IoError(eigenformer::detail::concat(fn, ": reading '", path.string(), "' failed"));
  return {{"bytes", bytes}, {"checksum", detail::hex64(sum.digest())}};
}

/// What is in a folder a run is asked to write into.
enum class FolderState {
  absent_or_empty,  // a new run may start there
  run,              // holds a run: checkpoint.json, or a config.json that is a run's (runs of earlier versions)
  other,            // holds files that are not a run's (a config.json of something else included)
};

inline FolderState folder_state(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return FolderState::absent_or_empty;
  if (!std::filesystem::is_directory(dir, ec)) return FolderState::other;
  const RunFolder run{dir};
  if (std::filesystem::exists(run.pointer(), ec)) return FolderState::run;
  if (std::filesystem::exists(run.config(), ec)) {
    try {  // a file named config.json is a run's only if it reads as one: other folders are never replaced
      load_run_config(run.config());
      return FolderState::run;
    } catch (const std::exception&) {
      return FolderState::other;
    }
  }
  return std::filesystem::directory_iterator(dir, ec) == std::filesystem::directory_iterator()
             ? FolderState::absent_or_empty
             : FolderState::other;
}

/// Writes a checkpoint folder: each file through write(path) (atomically, by the caller's writers), then the
/// manifest listing every file with its size and checksum. Nothing refers to the folder until commit_checkpoint.
/// Throws IoError on failure.
inline void write_checkpoint(const CheckpointFiles& files, Index epoch,
                             const std::vector<std::pair<std::string, std::function<void(const std::filesystem::path&)>>>&
                                 writers) {
  std::error_code ec;
  std::filesystem::create_directories(files.folder, ec);
  if (ec)
    throw IoError(eigenformer::detail::concat("write_checkpoint: cannot create '", files.folder.string(),
                                              "': ", ec.message()));
  nlohmann::json listed = nlohmann::json::object();
  for (const auto& [name, write] : writers) {
    write(files.folder / name);
    listed[name] = file_fingerprint(files.folder / name, "write_checkpoint");
  }
  const nlohmann::json manifest = {{"format", 1}, {"epoch", epoch}, {"files", listed}};
  io::write_text_file_atomically(files.manifest(), manifest.dump(1) + "\n", "write_checkpoint");
}

/// Makes the checkpoint of epoch current: one atomic replacement of checkpoint.json. Throws IoError on failure.
inline void commit_checkpoint(const RunFolder& run, Index epoch) {
  const std::string relative = std::filesystem::relative(run.checkpoint(epoch), run.dir).generic_string();
  const nlohmann::json pointer = {{"format", 1}, {"checkpoint", relative}, {"epoch", epoch}};
  io::write_text_file_atomically(run.pointer(), pointer.dump(1) + "\n", "commit_checkpoint");
}

/// The current checkpoint of a run, verified against its manifest (every file present with the size and checksum
/// listed), or an empty folder path when the run has none yet. Throws IoError naming the file and every problem
/// when checkpoint.json or the checkpoint it names is damaged.
inline CheckpointFiles current_checkpoint(const RunFolder& run, Index* epoch = nullptr) {
  using eigenformer::detail::concat;
  constexpr const char* fn = "current_checkpoint";
  std::error_code ec;
  if (!std::filesystem::exists(run.pointer(), ec)) return {};
  nlohmann::json pointer;
  try {
    pointer = nlohmann::json::parse(io::read_text_file(run.pointer(), fn));
  } catch (const nlohmann::json::exception& e) {
    throw IoError(concat(fn, ": '", run.pointer().string(), "' is not valid JSON: ", e.what()));
  }
  if (!pointer.is_object() || !pointer.contains("checkpoint") || !pointer["checkpoint"].is_string() ||
      !pointer.contains("epoch") || !pointer["epoch"].is_number_integer())
    throw IoError(concat(fn, ": '", run.pointer().string(), "' does not name a checkpoint and its epoch"));
  CheckpointFiles files{run.dir / pointer["checkpoint"].get<std::string>()};
  nlohmann::json manifest;
  try {
    manifest = nlohmann::json::parse(io::read_text_file(files.manifest(), fn));
  } catch (const nlohmann::json::exception& e) {
    throw IoError(concat(fn, ": '", files.manifest().string(), "' is not valid JSON: ", e.what()));
  }
  if (!manifest.is_object() || !manifest.contains("files") || !manifest["files"].is_object())
    throw IoError(concat(fn, ": '", files.manifest().string(), "' lists no files"));
  std::string problems;
  for (auto it = manifest["files"].begin(); it != manifest["files"].end(); ++it) {
    const std::filesystem::path path = files.folder / it.key();
    if (!std::filesystem::exists(path, ec)) {
      problems += concat(problems.empty() ? "" : "; ", it.key(), " is missing");
      continue;
    }
    const nlohmann::json got = file_fingerprint(path, fn);
    if (got != it.value())
      problems += concat(problems.empty() ? "" : "; ", it.key(), " is ", got.dump(), ", the manifest says ",
                         it.value().dump());
  }
  if (!problems.empty())
    throw IoError(concat(fn, ": the checkpoint '", files.folder.string(), "' is damaged: ", problems));
  if (epoch) *epoch = pointer["epoch"].get<Index>();
  return files;
}

/// Removes every checkpoint folder but keep (the current one), and the temporary files of killed writes in the
/// run folder and its checkpoints. Returns the names removed.
inline std::vector<std::string> prune_checkpoints(const RunFolder& run, const std::filesystem::path& keep) {
  std::vector<std::string> removed = io::remove_stale_temporaries(run.dir);
  std::error_code ec;
  if (!std::filesystem::is_directory(run.checkpoints(), ec)) return removed;
  const std::filesystem::path kept = keep.empty() ? keep : std::filesystem::weakly_canonical(keep, ec);
  for (const auto& entry : std::filesystem::directory_iterator(run.checkpoints(), ec)) {
    if (!kept.empty() && std::filesystem::weakly_canonical(entry.path(), ec) == kept) {
      for (const std::string& t : io::remove_stale_temporaries(entry.path())) removed.push_back(t);
      continue;
    }
    if (std::filesystem::remove_all(entry.path(), ec) > 0) removed.push_back(entry.path().filename().string());
  }
  return removed;
}

/// What a model built from a run folder accepts, for check_run_folder; -1 where it sets no limit.
struct ModelLimits {
  Index vocab_size = -1;  // rows of its token embedding
  Index classes = -1;     // outputs of its head
  Index max_length = -1;  // positions of its position table: the longest sequence it takes
};

/// Checks a run folder as a whole once its model is loaded (load_state_dict has matched the model that config.json
/// describes with model.safetensors): the tokenizer's vocabulary (vocab_size tokens, read from vocab_file) must be
/// the model's embedding, config.json's labels its head's outputs, and config.json's max_length must fit its
/// position table. A vocabulary of another size would map tokens to the wrong rows or to none. Throws IoError
/// naming the files and every disagreement.
inline void check_run_folder(const RunFolder& run, const RunConfig& config, const std::filesystem::path& vocab_file,
                             Index vocab_size, const ModelLimits& model) {
  using eigenformer::detail::concat;
  std::string problems;
  const auto add = [&problems](const std::string& p) { problems += (problems.empty() ? "" : "; ") + p; };
  const std::string model_files = concat("the model of ", run.config().string(), " and ", run.model().string());
  if (model.vocab_size >= 0 && vocab_size != model.vocab_size)
    add(concat(vocab_file.string(), " holds ", vocab_size, " tokens, but ", model_files, " embeds ", model.vocab_size,
               " (the vocabulary is not the one the model was trained with)"));
  const auto labels = static_cast<Index>(config.labels.size());
  if (model.classes >= 0 && labels > 0 && labels != model.classes)
    add(concat(run.config().string(), " lists ", labels, " labels, but ", model_files, " has ", model.classes,
               " outputs"));
  if (model.max_length >= 0 && config.max_length > model.max_length)
    add(concat(run.config().string(), ": max_length is ", config.max_length, ", but the position table of ",
               model_files, " holds ", model.max_length));
  if (!problems.empty())
    throw IoError(concat("check_run_folder: the files of '", run.dir.string(), "' disagree: ", problems));
}

}  // namespace eigenformer::train
