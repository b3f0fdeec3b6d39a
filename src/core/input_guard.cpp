#include "core/input_guard.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/parser.h>

#include "bpf/fd.hpp"

namespace bpfgate::core {

Result<std::string> read_bounded_file(const std::string &path, uint64_t max_bytes,
                                      const std::string &what) {
  // O_NONBLOCK: opening a FIFO without a writer must not wait for one.
  bpf::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0)
    return make_error(errno, "cannot read {} {}", what, excerpt(path, 200));
  struct stat st {};
  if (fstat(fd.get(), &st) != 0)
    return make_error(errno, "cannot read {} {}", what, excerpt(path, 200));
  if (!S_ISREG(st.st_mode))
    return make_error(EINVAL, "{} {} is not a regular file", what, excerpt(path, 200));
  if (static_cast<uint64_t>(st.st_size) > max_bytes)
    return make_error(EFBIG, "{} {} has {} bytes, more than the {} allowed", what,
                      excerpt(path, 200), st.st_size, max_bytes);
  std::string text;
  text.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return make_error(errno, "cannot read {} {}", what, excerpt(path, 200));
    if (n == 0)
      break;
    got += static_cast<size_t>(n);
  }
  text.resize(got);  // shrunk while read: what was there
  return text;
}

namespace {

// Walks a YAML stream's events: documents, duplicated keys, node count with
// aliases expanded (computed per anchor, never expanded in memory).
class Checker : public YAML::EventHandler {
 public:
  explicit Checker(uint64_t max_nodes) : max_(max_nodes) {}

  void OnDocumentStart(const YAML::Mark &mark) override {
    // yaml-cpp 0.7 starts document after document at a token it cannot use
    // (a ',' outside [ ] and { }) without moving past it: stop there.
    if (documents_ > 0 && mark.pos == last_start_) {
      stuck_ = true;
      add(mark.line + 1, fmt::format("not valid YAML: nothing can be read at column {} (a ',' "
                                     "outside [ ] or {{ }}?)",
                                     mark.column + 1));
      return;
    }
    last_start_ = mark.pos;
    if (++documents_ == 2)
      add(mark.line + 1, "a second YAML document ('---'): a config file holds one");
  }
  // The parser started a document where the last one started: it would go on forever.
  bool stuck() const { return stuck_; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark &mark, YAML::anchor_t anchor) override { leaf(mark, anchor, 1); }
  void OnAlias(const YAML::Mark &mark, YAML::anchor_t anchor) override {
    auto it = anchor_size_.find(anchor);
    leaf(mark, 0, it == anchor_size_.end() ? 1 : it->second);
  }
  void OnScalar(const YAML::Mark &mark, const std::string &, YAML::anchor_t anchor,
                const std::string &value) override {
    if (!frames_.empty() && frames_.back().is_map && frames_.back().children % 2 == 0) {
      auto [it, fresh] = frames_.back().keys.emplace(value, mark.line + 1);
      if (!fresh)
        add(mark.line + 1, fmt::format("key '{}' appears twice in one mapping (first on line {})",
                                       excerpt(value), it->second));
    }
    leaf(mark, anchor, 1);
  }
  void OnSequenceStart(const YAML::Mark &, const std::string &, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    push_frame(false, anchor);
  }
  void OnSequenceEnd() override { end(); }
  void OnMapStart(const YAML::Mark &, const std::string &, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    push_frame(true, anchor);
  }
  void OnMapEnd() override { end(); }

  std::vector<std::pair<int, std::string>> problems;

 private:
  struct Frame {
    bool is_map = false;
    YAML::anchor_t anchor = 0;
    uint64_t size = 1;  // itself
    uint64_t children = 0;
    std::map<std::string, int> keys;  // key -> line
  };

  void add(int line, std::string why) { problems.emplace_back(line, std::move(why)); }
  void push_frame(bool is_map, YAML::anchor_t anchor) {
    Frame f;
    f.is_map = is_map;
    f.anchor = anchor;
    frames_.push_back(std::move(f));
  }
  uint64_t sat_add(uint64_t a, uint64_t b) const { return std::min(a + b, max_ + 1); }

  void leaf(const YAML::Mark &mark, YAML::anchor_t anchor, uint64_t size) {
    if (anchor)
      anchor_size_[anchor] = size;
    child(mark.line + 1, size);
  }
  void end() {
    Frame f = std::move(frames_.back());
    frames_.pop_back();
    if (f.anchor)
      anchor_size_[f.anchor] = f.size;
    child(-1, f.size);
  }
  void child(int line, uint64_t size) {
    if (frames_.empty()) {
      total_ = sat_add(total_, size);
    } else {
      frames_.back().size = sat_add(frames_.back().size, size);
      frames_.back().children++;
    }
    uint64_t now = frames_.empty() ? total_ : frames_.back().size;
    if (now > max_ && !too_big_) {
      too_big_ = true;
      add(line > 0 ? line : 1,
          fmt::format("the config expands to more than {} nodes (YAML aliases?)", max_));
    }
  }

  uint64_t max_;
  int documents_ = 0;
  int last_start_ = -1;
  bool stuck_ = false;
  uint64_t total_ = 0;
  bool too_big_ = false;
  std::vector<Frame> frames_;
  std::map<YAML::anchor_t, uint64_t> anchor_size_;
};

}  // namespace

std::vector<std::pair<int, std::string>> yaml_problems(const std::string &text,
                                                       uint64_t max_nodes) {
  std::istringstream in(text);
  Checker c(max_nodes);
  try {
    YAML::Parser parser(in);
    while (!c.stuck() && parser.HandleNextDocument(c)) {
    }
  } catch (const YAML::Exception &) {
    // A syntax error: the loader reports it, with its line.
  }
  return c.problems;
}

}  // namespace bpfgate::core
