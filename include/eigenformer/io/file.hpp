// Files written so that nothing is ever half-written: every file the library writes goes to a temporary file in
// the target's folder, is flushed to the disk (fsync), renamed over the target, and the folder is synced so that
// the rename itself survives a power loss (the write-then-rename protocol of SQLite's and LMDB's documentation).
// A write that fails or is killed at any point leaves the previous file as it was. Also the reader the writers'
// callers pair with it.
#pragma once

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "eigenformer/core/error.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <unistd.h>
#define EIGENFORMER_POSIX_FILES 1
#endif

namespace eigenformer::io {

/// The steps of an atomic write, in order; a test hook (detail::write_hook) sees each one.
enum class WriteStage {
  created,   // the temporary file exists, empty
  written,   // every byte is written to the temporary file (not yet synced)
  synced,    // the temporary file is on the disk
  renamed,   // the target now names the new bytes
  finished,  // the folder is synced: the rename is durable
};

namespace detail {

using eigenformer::detail::concat;

/// Called at every stage of every atomic write when set: tests kill the process (fork + SIGKILL) or throw there
/// to check that the previous file survives. Null in normal use.
using WriteHook = void (*)(WriteStage stage, const std::filesystem::path& target);
inline std::atomic<WriteHook>& write_hook() {
  static std::atomic<WriteHook> hook{nullptr};
  return hook;
}
inline void reach(WriteStage stage, const std::filesystem::path& target) {
  if (WriteHook h = write_hook().load(std::memory_order_relaxed)) h(stage, target);
}

/// The suffix of temporary files: "<target>.tmp.<16 hex digits>".
inline constexpr std::string_view kTemporaryMarker = ".tmp.";

/// "<target>.tmp.<random>" beside the target: a rename within one folder (one file system) is atomic.
inline std::filesystem::path temporary_path(const std::filesystem::path& target) {
  static std::atomic<std::uint64_t> counter{0};
  std::uint64_t salt = counter.fetch_add(1) * 0x9E3779B97F4A7C15ull;
  try {
    std::random_device rd;
    salt ^= (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  } catch (...) {
    salt ^= reinterpret_cast<std::uintptr_t>(&counter);  // no entropy source: the counter alone
  }
  char suffix[32];
  std::snprintf(suffix, sizeof(suffix), "%.*s%016llx", static_cast<int>(kTemporaryMarker.size()),
                kTemporaryMarker.data(), static_cast<unsigned long long>(salt));
  std::filesystem::path tmp = target;
  tmp += suffix;
  return tmp;
}

/// True for a name temporary_path makes from some target.
inline bool is_temporary_name(const std::string& name) {
  const std::size_t at = name.rfind(kTemporaryMarker);
  if (at == std::string::npos || at == 0 || name.size() != at + kTemporaryMarker.size() + 16) return false;
  for (std::size_t i = at + kTemporaryMarker.size(); i < name.size(); ++i)
    if (!std::isxdigit(static_cast<unsigned char>(name[i]))) return false;
  return true;
}

/// fsync of a folder, so that a rename inside it is on the disk. Returns errno's value, 0 on success.
inline int sync_folder(const std::filesystem::path& folder) {
#ifdef EIGENFORMER_POSIX_FILES
  const std::string name = folder.empty() ? std::string(".") : folder.string();
  const int fd = ::open(name.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return errno;
  const int rc = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  // Some file systems cannot sync a folder (EINVAL): the rename is then as durable as the system makes it.
  return rc == EINVAL || rc == EBADF ? 0 : rc;
#else
  (void)folder;
  return 0;
#endif
}

}  // namespace detail

/// Writes path atomically: write(f) puts the bytes into a new temporary file beside path (returning false, or
/// throwing, on failure), which is then flushed, synced, renamed over path, and the folder synced. Throws IoError
/// naming fn, path and the system's reason (no space left, permission denied, ...); the previous file at path, if
/// any, is then unchanged and the temporary file removed. A process killed during the write leaves at most a
/// temporary file "<path>.tmp.<hex>" besides the unchanged previous file (remove_stale_temporaries clears those).
inline void write_file_atomically(const std::filesystem::path& path, const std::function<bool(std::FILE*)>& write,
                                  const char* fn = "write_file_atomically") {
  using detail::concat;
  const std::string target = path.string();
  if (path.empty() || !path.has_filename())
    throw IoError(concat(fn, ": the path '", target, "' names no file"));
  const std::filesystem::path tmp = detail::temporary_path(path);
  errno = 0;
  std::FILE* f = std::fopen(tmp.string().c_str(), "wbx");  // "x": never reuse an existing file
  if (!f)
    throw IoError(concat(fn, ": cannot write '", target, "': cannot create '", tmp.string(), "': ",
                         std::strerror(errno ? errno : EIO)));
  int err = 0;  // errno of the first failing step
  const auto step = [&err](bool success) {
    if (!success && err == 0) err = errno ? errno : EIO;
    return success;
  };
  std::error_code ec;
  try {
    detail::reach(WriteStage::created, path);
    errno = 0;
    bool ok = step(write(f));
    ok = ok && step(std::fflush(f) == 0);
    if (ok) detail::reach(WriteStage::written, path);
#ifdef EIGENFORMER_POSIX_FILES
    ok = ok && step(::fsync(::fileno(f)) == 0);  // the data reaches the disk before the rename publishes it
#endif
    ok = step(std::fclose(f) == 0) && ok;
    f = nullptr;
    if (ok) detail::reach(WriteStage::synced, path);
    if (ok) std::filesystem::rename(tmp, path, ec);
    if (!ok || ec) {
      const std::string reason = ok ? ec.message() : std::string(std::strerror(err));
      std::filesystem::remove(tmp, ec);
      throw IoError(concat(fn, ": cannot write '", target, "': ", reason, " (any previous file is unchanged)"));
    }
  } catch (const IoError&) {
    throw;
  } catch (...) {  // the write callback or a hook threw: nothing was published
    if (f) std::fclose(f);
    std::filesystem::remove(tmp, ec);
    throw;
  }
  detail::reach(WriteStage::renamed, path);
  if (const int e = detail::sync_folder(path.parent_path()))
    throw IoError(concat(fn, ": wrote '", target, "' but cannot sync its folder: ", std::strerror(e)));
  detail::reach(WriteStage::finished, path);
}

/// write_file_atomically with the bytes of text.
inline void write_text_file_atomically(const std::filesystem::path& path, std::string_view text,
                                       const char* fn = "write_text_file_atomically") {
  write_file_atomically(
      path, [text](std::FILE* f) { return text.empty() || std::fwrite(text.data(), 1, text.size(), f) == text.size(); },
      fn);
}

/// The whole file as bytes; throws IoError naming fn, the path and the reason when it cannot be read.
inline std::string read_text_file(const std::filesystem::path& path, const char* fn = "read_text_file") {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw IoError(detail::concat(fn, ": cannot open '", path.string(), "' for reading: ",
                                 errno ? std::strerror(errno) : "unknown error"));
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw IoError(detail::concat(fn, ": reading '", path.string(), "' failed"));
  return s.str();
}

/// Removes the temporary files that killed atomic writes left in folder ("<name>.tmp.<16 hex digits>"); returns
/// their names. Other files are never touched. A folder that does not exist holds none.
inline std::vector<std::string> remove_stale_temporaries(const std::filesystem::path& folder) {
  std::vector<std::string> removed;
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec)) return removed;
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file(ec) && detail::is_temporary_name(name) && std::filesystem::remove(entry.path(), ec))
      removed.push_back(name);
  }
  return removed;
}

}  // namespace eigenformer::io
