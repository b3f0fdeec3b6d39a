// Every production BPF program, loaded on its own into the running kernel,
// with the verifier's processed-instruction count (bpf_prog_info's
// verified_insns) printed and held under a budget far below the kernel's
// 1,000,000 limit. A program whose count explodes on some kernel is a design
// smell: the budget catches it before a user's kernel gives up. The kernel
// matrix (scripts/kernel-matrix.sh) runs this same test on Debian 12's 6.1.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/utsname.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace bpfgate::test {
namespace {

constexpr uint32_t kBudget = 100000;

// Objects whose programs run in production (bench and test objects aside).
const char *const kObjects[] = {
    "xdp_filter",    "xdp_drop",      "tc_datapath", "observe_tc",   "observe_tp",
    "observe_trace", "accel_sockops", "accel_sweep", "source_sweep", "lb"};

struct Loaded {
  int err = 0;           // 0, or the load's negative errno
  uint32_t insns = 0;    // verified_insns
  std::string log_tail;  // on failure
};

// Opens `path` and loads only program `prog` of it.
Loaded load_one(const std::string &path, const std::string &prog) {
  Loaded out;
  std::vector<char> log(1 << 20);
  LIBBPF_OPTS(bpf_object_open_opts, opts, .kernel_log_buf = log.data(),
              .kernel_log_size = log.size(), .kernel_log_level = 0);
  bpf_object *obj = bpf_object__open_file(path.c_str(), &opts);
  if (!obj) {
    out.err = -errno;
    return out;
  }
  bpf_program *p;
  bpf_object__for_each_program(p, obj) {
    bpf_program__set_autoload(p, prog == bpf_program__name(p));
  }
  out.err = bpf_object__load(obj);
  if (out.err) {
    std::string l(log.data());
    out.log_tail = l.size() > 600 ? l.substr(l.size() - 600) : l;
  } else {
    bpf_program *mine = bpf_object__find_program_by_name(obj, prog.c_str());
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (mine && bpf_obj_get_info_by_fd(bpf_program__fd(mine), &info, &len) == 0)
      out.insns = info.verified_insns;
  }
  bpf_object__close(obj);
  return out;
}

// (name, section) of each program of the object at `path`.
std::vector<std::pair<std::string, std::string>> program_names(const std::string &path) {
  std::vector<std::pair<std::string, std::string>> names;
  bpf_object *obj = bpf_object__open_file(path.c_str(), nullptr);
  if (!obj)
    return names;
  bpf_program *p;
  bpf_object__for_each_program(p, obj) {
    names.emplace_back(bpf_program__name(p), bpf_program__section_name(p));
  }
  bpf_object__close(obj);
  return names;
}

// Program types a kernel may refuse before verifying anything (EPERM,
// EOPNOTSUPP, EINVAL for an unknown attach target): the product detects this
// at run time and falls back; the budget only concerns what gets verified.
bool optional_kind(const std::string &section) {
  return section.rfind("fexit/", 0) == 0 || section.rfind("iter/", 0) == 0;
}

TEST(VerifierBudget, EveryProductionProgramVerifiesFarBelowTheLimit) {
  utsname u{};
  uname(&u);
  std::printf("kernel %s, budget %u processed instructions per program\n", u.release, kBudget);
  int verified = 0;
  for (const char *o : kObjects) {
    const std::string path = std::string(BPFGATE_BPF_DIR) + "/" + o + ".bpf.o";
    auto names = program_names(path);
    ASSERT_FALSE(names.empty()) << "no programs in " << path;
    for (const auto &[name, section] : names) {
      Loaded l = load_one(path, name);
      const bool unverified =
          l.log_tail.empty() || l.log_tail.find("processed 0 insns") != std::string::npos;
      if (l.err && unverified && optional_kind(section)) {
        std::printf("  %-14s %-28s refused by this kernel before verification: %s\n", o,
                    name.c_str(), std::strerror(-l.err));
        continue;
      }
      ASSERT_EQ(l.err, 0) << o << "/" << name << " did not load: " << std::strerror(-l.err) << "\n"
                          << l.log_tail;
      std::printf("  %-14s %-28s %7u\n", o, name.c_str(), l.insns);
      EXPECT_LT(l.insns, kBudget) << o << "/" << name;
      EXPECT_GT(l.insns, 0u) << o << "/" << name << ": the kernel reported no count";
      verified++;
    }
  }
  EXPECT_GE(verified, 10);
}

}  // namespace
}  // namespace bpfgate::test
