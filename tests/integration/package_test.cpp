// Installing as operators do (cmake/package.cmake): `cmake --install` into a
// scratch prefix, and the Debian package cpack makes of this build tree, read
// with dpkg-deb and unpacked with `dpkg -x` into a scratch root (never into
// the host's /), whose bpfgate checks the config the package ships and
// attaches its filter in namespaces made here. Units checked by
// `systemd-analyze verify`.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <fmt/format.h>

#include "support/system.hpp"

namespace bpfgate::test {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path &p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string field(const std::string &control, const std::string &name) {
  std::istringstream in(control);
  for (std::string line; std::getline(in, line);) {
    auto b = line.find_first_not_of(' ');
    if (b != std::string::npos && line.compare(b, name.size() + 1, name + ":") == 0)
      return line.substr(b + name.size() + 2);
  }
  return "";
}

// Regular files (and symlinks) under root, as paths relative to it.
std::set<std::string> files_under(const fs::path &root) {
  std::set<std::string> out;
  for (const auto &e : fs::recursive_directory_iterator(root))
    if (!e.is_directory())
      out.insert("/" + fs::relative(e.path(), root).string());
  return out;
}

const fs::path kBuild = fs::path(BPFGATE_BINARY).parent_path();
const fs::path kSource = BPFGATE_SOURCE_DIR;

// What every install holds, under its prefix.
const char *const kUnderPrefix[] = {
    "/bin/bpfgate",
    "/lib/systemd/system/bpfgate.service",
    "/share/bpfgate/grafana-bpfgate.json",
    "/share/bpfgate/prometheus-bpfgate-rules.yaml",
    "/share/doc/bpfgate/README.md",
    "/share/doc/bpfgate/examples/bpfgate.yaml",
};

// The unit as installed: deploy/'s, its paths those of the install.
void expect_unit(const fs::path &unit, const std::string &prefix) {
  std::string text = slurp(unit);
  std::string bin = prefix + "/bin/bpfgate";
  EXPECT_TRUE(contains(text, "ExecStartPre=" + bin + " check /etc/bpfgate/bpfgate.yaml\n")) << text;
  EXPECT_TRUE(contains(text, "ExecStart=" + bin + " run --config /etc/bpfgate/bpfgate.yaml"))
      << text;
  EXPECT_TRUE(contains(text, "ExecReload=" + bin + " reload\n")) << text;
  EXPECT_TRUE(contains(text, "Documentation=file://" + prefix + "/share/doc/bpfgate/README.md"))
      << text;
  if (prefix != "/usr/local") {
    EXPECT_FALSE(contains(text, "/usr/local")) << text;
  }
  EXPECT_TRUE(contains(text, "ProtectSystem=strict")) << "the rest as in deploy/";
}

// systemd's own check of a unit (offline: PID 1 need not be systemd), which
// also fails when an Exec line's binary is missing.
void expect_verified(const fs::path &unit) {
  if (run("command -v systemd-analyze").exit_code != 0) {
    ADD_FAILURE() << "systemd-analyze is not installed (scripts/deps.sh installs Debian's systemd)";
    return;
  }
  auto r = run("systemd-analyze verify --man=no --generators=no " + unit.string());
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.err, "") << "no warnings either";
}

TEST(Install, CmakeInstallPutsEachFileUnderThePrefix) {
  ScratchDir s(unique_prefix() + "-install");
  fs::path prefix = s.path() / "opt";
  auto r = run(fmt::format("cmake --install {} --prefix {}", kBuild.string(), prefix.string()));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::set<std::string> want;
  for (const char *f : kUnderPrefix)
    want.insert(f);
  EXPECT_EQ(files_under(prefix), want) << "and nothing else (no /etc: an install never "
                                          "overwrites an operator's config)";
  EXPECT_FALSE(fs::exists(s.path() / "etc"));
  expect_unit(prefix / "lib/systemd/system/bpfgate.service", prefix.string());
  expect_verified(prefix / "lib/systemd/system/bpfgate.service");
  EXPECT_EQ(slurp(prefix / "share/bpfgate/prometheus-bpfgate-rules.yaml"),
            slurp(kSource / "deploy/prometheus-bpfgate-rules.yaml"));
  EXPECT_EQ(slurp(prefix / "share/doc/bpfgate/examples/bpfgate.yaml"),
            slurp(kSource / "deploy/bpfgate.yaml"));
  auto v = run((prefix / "bin/bpfgate").string() + " --version");
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.out, "bpfgate " BPFGATE_VERSION "\n");
}

TEST(Install, DebianPackageHoldsWhatItNeedsAndRunsFromAScratchRoot) {
  if (run("command -v dpkg-shlibdeps && command -v dpkg-deb").exit_code != 0)
    GTEST_SKIP() << "dpkg-dev is not installed (scripts/deps.sh installs it)";
  ScratchDir s(unique_prefix() + "-deb");
  auto r = run(fmt::format("cd {} && cpack -G DEB -B {} 2>&1", kBuild.string(),
                           (s.path() / "out").string()));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  fs::path deb = s.path() / "out" / fmt::format("bpfgate_{}_amd64.deb", BPFGATE_VERSION);
  if (run("dpkg --print-architecture").out != "amd64\n")
    for (const auto &e : fs::directory_iterator(s.path() / "out"))
      if (e.path().extension() == ".deb")
        deb = e.path();
  ASSERT_TRUE(fs::exists(deb)) << r.out;

  // The control fields.
  auto info = run_ok("dpkg-deb -I " + deb.string());
  EXPECT_EQ(field(info.out, "Package"), "bpfgate");
  EXPECT_EQ(field(info.out, "Version"), BPFGATE_VERSION);
  EXPECT_EQ(field(info.out, "Section"), "net");
  EXPECT_TRUE(contains(field(info.out, "Maintainer"), "<")) << info.out;
  EXPECT_TRUE(contains(field(info.out, "Description"), "eBPF gateway")) << info.out;
  // Depends from the libraries the binary links (dpkg-shlibdeps), with versions
  // (package names without their soname suffix, which differ between releases).
  std::string depends = field(info.out, "Depends");
  for (const char *lib : {"libc6 (>=", "libbpf", "libxdp", "libyaml-cpp", "libfmt", "libseccomp",
                          "libnl-route-3", "libstdc++6 (>="})
    EXPECT_TRUE(contains(depends, lib)) << lib << " in: " << depends;
  // The config in /etc is the operator's: a conffile, kept across upgrades.
  auto control = s.path() / "control";
  run_ok(fmt::format("dpkg-deb -e {} {}", deb.string(), control.string()));
  EXPECT_EQ(slurp(control / "conffiles"), "/etc/bpfgate/bpfgate.yaml\n");

  // The files, from the archive's own listing, and unpacked.
  auto listing = run_ok("dpkg-deb -c " + deb.string()).out;
  std::set<std::string> want = {"/etc/bpfgate/bpfgate.yaml"};
  for (const char *f : kUnderPrefix)
    want.insert(std::string("/usr") + f);
  for (const auto &f : want)
    EXPECT_TRUE(contains(listing, " ." + f + "\n")) << f << " not in:\n" << listing;
  fs::path root = s.path() / "root";
  run_ok(fmt::format("dpkg -x {} {}", deb.string(), root.string()));
  EXPECT_EQ(files_under(root), want) << "and nothing else";
  EXPECT_EQ(fs::status(root / "usr/bin/bpfgate").permissions() & fs::perms::owner_exec,
            fs::perms::owner_exec);
  expect_unit(root / "usr/lib/systemd/system/bpfgate.service", "/usr");
  // systemd-analyze verify --root wants a whole systemd tree in the root
  // (sysinit.target...): the unit is verified with its binary's path moved
  // under the scratch root instead.
  std::string unit = slurp(root / "usr/lib/systemd/system/bpfgate.service");
  for (size_t i = 0; (i = unit.find("=/usr/bin/bpfgate", i)) != std::string::npos; i++)
    unit.replace(i + 1, 0, root.string());
  fs::create_directories(s.path() / "unit");
  std::ofstream(s.path() / "unit/bpfgate.service") << unit;
  expect_verified(s.path() / "unit/bpfgate.service");
  EXPECT_EQ(slurp(root / "etc/bpfgate/bpfgate.yaml"), slurp(kSource / "deploy/bpfgate.yaml"));
  EXPECT_EQ(slurp(root / "usr/share/bpfgate/grafana-bpfgate.json"),
            slurp(kSource / "deploy/grafana-bpfgate.json"));

  // The packaged binary runs (BPF objects are in its skeletons: nothing else
  // is loaded) and takes the packaged config.
  auto bin = (root / "usr/bin/bpfgate").string();
  auto check = run(bin + " check " + (root / "etc/bpfgate/bpfgate.yaml").string());
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  auto v = run(bin + " --version");
  EXPECT_EQ(v.out, "bpfgate " BPFGATE_VERSION "\n");
  auto missing = run("ldd " + bin + " | grep 'not found'");
  EXPECT_NE(missing.exit_code, 0) << missing.out;
  // ... and, stripped as it is, loads and attaches its XDP filter (on a veth
  // of namespaces made here, pins under a bpffs directory of its own).
  run_ok("mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf");
  std::string p = unique_prefix();
  Netns a(p + "pa"), b(p + "pb");
  make_veth(a, p + "a", "198.18.0.1/24", b, p + "b", "198.18.0.2/24");
  fs::path bpffs = "/sys/fs/bpf/" + p + "-pkg";
  fs::create_directories(bpffs);
  struct Unpin {
    fs::path dir;
    ~Unpin() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } unpin{bpffs};
  std::string cli = a.exec() + bin + " --bpffs " + bpffs.string() + " ";
  auto attach = run(cli + "attach " + p + "a --rate 1000 --burst 1000");
  EXPECT_EQ(attach.exit_code, 0) << attach.out << attach.err;
  auto status = run(cli + "-j status " + p + "a");
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_TRUE(contains(status.out, "\"rate_pps\":1000")) << status.out;
  auto detach = run(cli + "detach " + p + "a");
  EXPECT_EQ(detach.exit_code, 0) << detach.out << detach.err;
}

}  // namespace
}  // namespace bpfgate::test
