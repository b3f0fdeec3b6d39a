// libFuzzer target: the YAML config as `bpfgate check` loads it
// (core::parse_config, what load_config runs on the file's bytes), for the
// agent and for `bpfgate tc`, then compiled into a policy as the agent would.
// An allow_file/deny_file it names is looked for beside a config in a scratch
// folder that holds one small prefix file, prefixes.txt.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/config.hpp"
#include "core/policy.hpp"
#include "support/fuzz_check.hpp"

using bpfgate::fuzz::check;

namespace {

std::string config_path() {
  static const std::string path = [] {
    auto dir = std::filesystem::temp_directory_path() /
               ("bpfgate-fuzz-config-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "prefixes.txt") << "198.18.0.0/15\n2001:db8::/32 # docs\n10.0.0.1\n";
    return (dir / "bpfgate.yaml").string();
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string text(reinterpret_cast<const char *>(data), size);
  for (auto use : {bpfgate::core::ConfigFor::agent, bpfgate::core::ConfigFor::tc}) {
    auto c = bpfgate::core::parse_config(text, config_path(), use);
    if (!c) {
      check(!c.error().message().empty(), "a refused config says why");
      continue;
    }
    auto image = bpfgate::core::compile(*c);
    check(image.rules.size() == c->rules.size() + 1, "one rule entry per rule, after the default");
    check(c->allow.size() + c->deny.size() <= BG_ACL_MAX, "the ACL's bound holds");
  }
  return 0;
}
