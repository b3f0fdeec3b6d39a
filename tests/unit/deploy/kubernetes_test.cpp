// The Kubernetes manifests (deploy/kubernetes/), checked without a cluster:
// their structure, and every field the agent relies on. The ConfigMap's
// config goes through the agent's own parser (core::parse_config, what
// `bpfgate check` reads it with); each path that config names (the config
// itself, fleet.tls, agent.state_dir, the control socket, bpffs) must be on
// the volume that holds it in a pod; the probes' port is the config's
// metrics port; the capabilities are the ones the agent needs and no more;
// the container's arguments are parsed by the real `bpfgate` binary.
// Each check is shown to fail on a manifest broken on purpose.
#include <gtest/gtest.h>

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "support/system.hpp"

namespace bpfgate::test {
namespace {

namespace fs = std::filesystem;

const fs::path kDir = fs::path(BPFGATE_SOURCE_DIR) / "deploy" / "kubernetes";
constexpr const char *kKinds[] = {"Namespace", "ConfigMap", "Secret", "DaemonSet"};
// What the agent needs (README, "Least privilege"; daemonset.yaml says why
// each), and what it may have beside: SYS_RESOURCE, on kernels before 5.11.
const std::set<std::string> kNeededCaps = {"BPF", "NET_ADMIN", "PERFMON", "SYS_ADMIN"};
const std::set<std::string> kAllowedCaps = {"BPF", "NET_ADMIN", "PERFMON", "SYS_ADMIN",
                                            "SYS_RESOURCE"};
// About what one max_sources entry of one interface takes in BPF maps
// (deploy/bpfgate.service, MemoryMax=), charged to the pod's memory.
constexpr uint64_t kBytesPerSource = 320;
// The agent's own memory, its other maps and event buffers: a margin.
constexpr uint64_t kAgentBytes = 64ULL << 20;

using Docs = std::map<std::string, YAML::Node>;  // kind -> its one document

struct Loaded {
  Docs docs;
  std::vector<std::string> problems;
};

Loaded load_manifests() {
  Loaded l;
  std::vector<fs::path> files;
  for (const auto &e : fs::directory_iterator(kDir))
    if (e.path().extension() == ".yaml")
      files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto &f : files) {
    std::vector<YAML::Node> docs;
    try {
      docs = YAML::LoadAllFromFile(f.string());
    } catch (const YAML::Exception &e) {
      l.problems.push_back(f.filename().string() + ": " + e.what());
      continue;
    }
    for (const auto &d : docs) {
      if (d.IsNull())
        continue;
      std::string kind = d["kind"].as<std::string>("");
      if (!l.docs.emplace(kind, d).second)
        l.problems.push_back(f.filename().string() + ": a second " + kind);
    }
  }
  return l;
}

YAML::Node none() {
  return YAML::Node(YAML::NodeType::Undefined);
}
std::string str(const YAML::Node &n) {
  return n && n.IsScalar() ? n.Scalar() : "";
}
// The Secret holds `key`, in data or stringData.
bool has_key(const YAML::Node &secret, const std::string &key) {
  for (const char *part : {"data", "stringData"})
    if (secret[part] && secret[part].IsMap() && secret[part][key])
      return true;
  return false;
}
bool is_true(const YAML::Node &n) {
  return n && n.IsScalar() && n.as<bool>(false);
}
// `path` is `dir` or below it.
bool under(const std::string &path, const std::string &dir) {
  return path == dir || (path.starts_with(dir) && (dir.ends_with("/") || path[dir.size()] == '/'));
}

// The one container's view of the files: which volume holds a path.
struct Mounts {
  YAML::Node container, pod;
  // The volume mount holding `path` (the longest mountPath above it) and its volume.
  std::optional<std::pair<YAML::Node, YAML::Node>> holding(const std::string &path) const {
    std::optional<YAML::Node> best;  // emplaced: a Node's operator= writes through to the document
    for (const auto &m : container["volumeMounts"])
      if (under(path, str(m["mountPath"])) &&
          (!best || str(m["mountPath"]).size() > str((*best)["mountPath"]).size()))
        best.emplace(static_cast<const YAML::Node &>(m));
    if (!best)
      return std::nullopt;
    for (const auto &v : pod["volumes"])
      if (str(v["name"]) == str((*best)["name"]))
        return std::make_pair(*best, static_cast<const YAML::Node &>(v));
    return std::make_pair(*best, none());
  }
};

class Checker {
 public:
  explicit Checker(const Docs &d) : d_(d) {}

  std::vector<std::string> run() {
    try {
      check();
    } catch (const YAML::Exception &e) {
      bad(std::string("a manifest lacks what the checks walk through: ") + e.what());
    }
    return problems_;
  }

 private:
  void check() {
    for (const char *k : kinds())
      if (!d_.count(k))
        bad(std::string("no ") + k + " among the manifests");
    if (!problems_.empty())
      return;
    namespace_();
    const YAML::Node &ds = d_.at("DaemonSet");
    pod_ = ds["spec"]["template"]["spec"];
    daemonset(ds);
    if (!pod_["containers"].IsSequence() || pod_["containers"].size() != 1) {
      bad("the DaemonSet's pod: one container, the agent");
      return;
    }
    mounts_ = Mounts{pod_["containers"][0], pod_};
    const YAML::Node &c = mounts_.container;
    security(c["securityContext"]);
    auto config_path = arguments(c);
    auto cfg = config(config_path);
    secret();
    if (cfg) {
      files(*cfg, config_path);
      probes(*cfg, c);
      resources(*cfg, c["resources"]);
    }
  }

  static std::vector<const char *> kinds() { return {std::begin(kKinds), std::end(kKinds)}; }
  void bad(const std::string &why) { problems_.push_back(why); }
  void expect(bool ok, const std::string &why) {
    if (!ok)
      bad(why);
  }

  void namespace_() {
    const YAML::Node &ns = d_.at("Namespace");
    ns_ = str(ns["metadata"]["name"]);
    expect(!ns_.empty(), "the Namespace has no name");
    // hostNetwork, hostPath and added capabilities pass the "privileged" level only.
    expect(str(ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]) == "privileged",
           "the Namespace must enforce the \"privileged\" Pod Security level (host network, "
           "hostPath, capabilities)");
    for (const auto &[kind, doc] : d_) {
      expect(!str(doc["apiVersion"]).empty(), kind + ": no apiVersion");
      expect(!str(doc["metadata"]["name"]).empty(), kind + ": no metadata.name");
      if (kind != "Namespace")
        expect(str(doc["metadata"]["namespace"]) == ns_,
               kind + ": metadata.namespace is not " + ns_);
    }
  }

  void daemonset(const YAML::Node &ds) {
    expect(str(ds["apiVersion"]) == "apps/v1", "DaemonSet: apiVersion apps/v1");
    const YAML::Node &sel = ds["spec"]["selector"]["matchLabels"];
    expect(sel.IsMap() && sel.size() > 0, "DaemonSet: spec.selector.matchLabels");
    for (const auto &kv : sel)
      expect(str(ds["spec"]["template"]["metadata"]["labels"][kv.first.Scalar()]) ==
                 kv.second.Scalar(),
             "DaemonSet: the pod template lacks the selector's label " + kv.first.Scalar());
    const YAML::Node &us = ds["spec"]["updateStrategy"];
    expect(str(us["type"]) == "RollingUpdate" && str(us["rollingUpdate"]["maxUnavailable"]) == "1",
           "DaemonSet: updateStrategy RollingUpdate, maxUnavailable 1");
    expect(is_true(pod_["hostNetwork"]), "the pod: hostNetwork: true (the node's interfaces)");
    expect(str(pod_["dnsPolicy"]) == "ClusterFirstWithHostNet",
           "the pod: dnsPolicy ClusterFirstWithHostNet (cluster names with the host's network)");
    expect(!is_true(pod_["hostPID"]) && !is_true(pod_["hostIPC"]),
           "the pod: no hostPID or hostIPC (the agent needs neither)");
    bool everywhere = false;
    for (const auto &t : pod_["tolerations"])
      everywhere |= str(t["operator"]) == "Exists" && !t["key"] && !t["effect"];
    expect(everywhere, "the pod: a toleration {operator: Exists} (every node, tainted or not)");
    expect(pod_["terminationGracePeriodSeconds"].as<int>(0) >= 5,
           "the pod: terminationGracePeriodSeconds of 5 or more (the agent stops in about 1 s)");
  }

  void security(const YAML::Node &sc) {
    expect(!is_true(sc["privileged"]), "the agent's container must not be privileged");
    expect(sc["allowPrivilegeEscalation"] && !is_true(sc["allowPrivilegeEscalation"]),
           "securityContext: allowPrivilegeEscalation: false");
    expect(is_true(sc["readOnlyRootFilesystem"]), "securityContext: readOnlyRootFilesystem: true");
    std::set<std::string> drop, add;
    for (const auto &c : sc["capabilities"]["drop"])
      drop.insert(str(c));
    for (const auto &c : sc["capabilities"]["add"])
      add.insert(str(c));
    expect(drop.count("ALL") == 1, "capabilities: drop ALL, then add what the agent needs");
    for (const auto &c : add)
      expect(kAllowedCaps.count(c) == 1, "capability " + c + " is more than the agent needs");
    for (const auto &c : kNeededCaps)
      expect(add.count(c) == 1, "capability " + c + " is missing: the agent needs it");
    expect(str(sc["seccompProfile"]["type"]) != "Unconfined",
           "securityContext: a seccomp profile (RuntimeDefault)");
  }

  // The container's arguments: what the image's entrypoint (bpfgate) runs.
  std::string arguments(const YAML::Node &c) {
    expect(!c["command"], "the container: no command (the image's entrypoint is bpfgate)");
    for (const auto &a : c["args"])
      args_.push_back(str(a));
    expect(!args_.empty() && args_[0] == "run", "the container's args: `run` (the agent)");
    std::string path;
    for (size_t i = 0; i < args_.size(); ++i) {
      if ((args_[i] == "--config" || args_[i] == "-c") && i + 1 < args_.size())
        path = args_[i + 1];
      else if (args_[i].starts_with("--config="))
        path = args_[i].substr(9);
    }
    expect(!path.empty(), "the container's args: no --config FILE");
    keep_ = std::find(args_.begin(), args_.end(), "--keep-datapath") != args_.end();
    return path;
  }

  std::optional<core::Config> config(const std::string &path) {
    const YAML::Node &data = d_.at("ConfigMap")["data"];
    std::string key = fs::path(path).filename().string();
    if (!data[key]) {
      bad("the ConfigMap has no key " + key + " (the file --config names)");
      return std::nullopt;
    }
    auto c = core::parse_config(str(data[key]), "configmap.yaml:" + key);
    if (!c) {
      bad("the ConfigMap's config is refused by the agent's parser:\n" + c.error().what());
      return std::nullopt;
    }
    expect(
        keep_ || c->keep_datapath,
        "neither --keep-datapath nor agent.keep_datapath: a pod restart would detach the filter");
    expect(c->fleet.has_value(), "the ConfigMap's config has no fleet: section");
    return *c;
  }

  void secret() {
    const YAML::Node &s = d_.at("Secret");
    for (const char *k : {"ca.crt", "tls.crt", "tls.key"})
      expect(has_key(s, k), std::string("the Secret has no ") + k);
    expect(str(s["type"]) == "kubernetes.io/tls", "the Secret: type kubernetes.io/tls");
  }

  // `path` is in the pod, on a volume of `what` kind; returns the volume.
  YAML::Node on_volume(const std::string &path, const std::string &what, bool writable) {
    auto h = mounts_.holding(path);
    if (!h || !h->second) {
      bad(path + " (" + what + ") is on no volume of the pod");
      return none();
    }
    if (writable)
      expect(!is_true(h->first["readOnly"]), path + " (" + what + ") is mounted read-only");
    return h->second;
  }

  void files(const core::Config &c, const std::string &config_path) {
    // The config, from the ConfigMap, under the key --config names.
    auto v = on_volume(config_path, "--config", false);
    if (v)
      expect(str(v["configMap"]["name"]) == str(d_.at("ConfigMap")["metadata"]["name"]) &&
                 !v["configMap"]["items"],
             "--config " + config_path + " is not the ConfigMap's file");
    // etcd's TLS files, from the Secret, each under its key.
    if (c.fleet && c.fleet->tls) {
      for (const auto &f : {c.fleet->tls->ca, c.fleet->tls->cert, c.fleet->tls->key}) {
        auto s = on_volume(f, "fleet.tls", false);
        if (!s)
          continue;
        const YAML::Node &secret = d_.at("Secret");
        std::string key = fs::path(f).filename().string();
        expect(
            str(s["secret"]["secretName"]) == str(secret["metadata"]["name"]) &&
                has_key(secret, key) &&
                fs::path(f).parent_path() == fs::path(str(mounts_.holding(f)->first["mountPath"])),
            "fleet.tls: " + f + " is not a file of the Secret's volume");
      }
    }
    // The manual blocks and the fleet's revision: on the host, so they outlive the pod.
    if (!c.state_dir.empty()) {
      auto s = on_volume(c.state_dir, "agent.state_dir", true);
      expect(s && str(s["hostPath"]["path"]) == c.state_dir,
             "agent.state_dir " + c.state_dir + " is not the host's directory of that name");
    }
    // The control socket: written into a read-only root otherwise.
    on_volume(fs::path(c.control_socket).parent_path().string(), "agent.control_socket", true);
    // The pins: the host's bpffs, or they die with the pod and the filter with them.
    auto b = on_volume("/sys/fs/bpf", "bpffs", true);
    auto bm = mounts_.holding("/sys/fs/bpf");
    expect(b && str(b["hostPath"]["path"]) == "/sys/fs/bpf" &&
               str(bm->first["mountPath"]) == "/sys/fs/bpf",
           "/sys/fs/bpf is not the host's bpffs");
    expect(bm && str(bm->first["mountPropagation"]) == "HostToContainer",
           "/sys/fs/bpf: mountPropagation HostToContainer (Bidirectional needs privileged)");
    // The host's cgroup v2 tree, for accel.cgroup.
    auto g = on_volume(c.accel && !c.accel->cgroup.empty() ? c.accel->cgroup : "/sys/fs/cgroup",
                       "cgroup v2", false);
    expect(g && str(g["hostPath"]["path"]) == "/sys/fs/cgroup",
           "/sys/fs/cgroup is not the host's cgroup v2 tree");
    // Each mount has its volume.
    for (const auto &m : mounts_.container["volumeMounts"]) {
      bool found = false;
      for (const auto &vol : pod_["volumes"])
        found |= str(vol["name"]) == str(m["name"]);
      expect(found, "volumeMount " + str(m["name"]) + " has no volume");
    }
  }

  void probes(const core::Config &c, const YAML::Node &ctr) {
    expect(c.metrics.enabled, "metrics: off, and the probes ask /metrics");
    std::map<std::string, int> ports;
    for (const auto &p : ctr["ports"])
      ports[str(p["name"])] = p["containerPort"].as<int>(0);
    expect(ports.size() == 1 && ports.begin()->second == c.metrics.port,
           "the container's port is not metrics.listen's " + std::to_string(c.metrics.port));
    bool wildcard = c.metrics.address == "0.0.0.0" || c.metrics.address == "::";
    for (const char *kind : {"livenessProbe", "readinessProbe", "startupProbe"}) {
      const YAML::Node &p = ctr[kind];
      if (!p) {
        expect(std::string(kind) == "startupProbe", std::string("no ") + kind);
        continue;
      }
      const YAML::Node &h = p["httpGet"];
      std::string port = str(h["port"]);
      int n = ports.count(port) ? ports[port] : std::atoi(port.c_str());
      expect(str(h["path"]) == "/metrics" && n == c.metrics.port,
             std::string(kind) + ": not GET /metrics on metrics.listen's port " +
                 std::to_string(c.metrics.port));
      // The kubelet asks the pod's address (the node's) unless told a host.
      expect(h["host"] ? str(h["host"]) == c.metrics.address || wildcard : wildcard,
             std::string(kind) + ": metrics.listen " + c.metrics.address +
                 " is not where the kubelet asks");
    }
    const YAML::Node &ann = d_.at("DaemonSet")["spec"]["template"]["metadata"]["annotations"];
    if (ann["prometheus.io/port"])
      expect(str(ann["prometheus.io/port"]) == std::to_string(c.metrics.port),
             "the annotation prometheus.io/port is not metrics.listen's port");
  }

  void resources(const core::Config &c, const YAML::Node &r) {
    uint64_t sources = 0;
    for (const auto &i : c.interfaces)
      sources += i.max_sources;
    std::smatch m;
    std::string limit = str(r["limits"]["memory"]);
    static const std::regex kMem(R"(([0-9]+)(Ki|Mi|Gi)?)");
    uint64_t bytes = 0;
    if (std::regex_match(limit, m, kMem))
      bytes = std::stoull(m[1]) * (m[2] == "Gi" ? 1ULL << 30 : m[2] == "Mi" ? 1ULL << 20 : 1024);
    expect(bytes >= sources * kBytesPerSource + (kAgentBytes),
           "resources.limits.memory " + limit + " leaves no room for the BPF maps of " +
               std::to_string(sources) + " max_sources (" +
               std::to_string(sources * kBytesPerSource >> 20) + " MiB) and the agent (" +
               std::to_string(kAgentBytes >> 20) + " MiB)");
    expect(str(r["requests"]["memory"]) != "" && str(r["requests"]["cpu"]) != "",
           "resources.requests: cpu and memory");
  }

  const Docs &d_;
  std::vector<std::string> problems_;
  std::string ns_;
  YAML::Node pod_;
  Mounts mounts_;
  std::vector<std::string> args_;
  bool keep_ = false;
};

std::string joined(const std::vector<std::string> &v) {
  std::string s;
  for (const auto &p : v)
    s += "  " + p + "\n";
  return s;
}

Docs clone(const Docs &d) {
  Docs c;
  for (const auto &[k, v] : d)
    c[k] = YAML::Clone(v);
  return c;
}

TEST(KubernetesManifests, LoadOneOfEachKind) {
  auto l = load_manifests();
  EXPECT_TRUE(l.problems.empty()) << joined(l.problems);
  for (const char *k : kKinds)
    EXPECT_EQ(l.docs.count(k), 1u) << k;
  EXPECT_EQ(l.docs.size(), std::size(kKinds));
}

TEST(KubernetesManifests, GiveTheAgentWhatItReliesOn) {
  auto l = load_manifests();
  auto p = Checker(l.docs).run();
  EXPECT_TRUE(p.empty()) << joined(p);
}

// Each check fails on a manifest broken on purpose: the test can fail.
TEST(KubernetesManifests, EachCheckFailsOnABrokenManifest) {
  auto l = load_manifests();
  ASSERT_TRUE(Checker(l.docs).run().empty());
  auto pod = [](Docs &d) { return d["DaemonSet"]["spec"]["template"]["spec"]; };
  auto ctr = [&](Docs &d) { return pod(d)["containers"][0]; };
  auto config_text = [](Docs &d, const std::string &from, const std::string &to) {
    std::string t = d["ConfigMap"]["data"]["bpfgate.yaml"].as<std::string>();
    auto at = t.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    d["ConfigMap"]["data"]["bpfgate.yaml"] = t.replace(at, from.size(), to);
  };
  const std::vector<std::tuple<const char *, std::function<void(Docs &)>, const char *>> cases = {
      {"privileged", [&](Docs &d) { ctr(d)["securityContext"]["privileged"] = true; },
       "must not be privileged"},
      {"SYS_ADMIN dropped",
       [&](Docs &d) {
         auto add = ctr(d)["securityContext"]["capabilities"]["add"];
         YAML::Node keep;
         for (const auto &c : add)
           if (c.Scalar() != "SYS_ADMIN")
             keep.push_back(c.Scalar());
         ctr(d)["securityContext"]["capabilities"]["add"] = keep;
       },
       "capability SYS_ADMIN is missing"},
      {"NET_RAW added",
       [&](Docs &d) { ctr(d)["securityContext"]["capabilities"]["add"].push_back("NET_RAW"); },
       "capability NET_RAW is more"},
      {"host network off", [&](Docs &d) { pod(d)["hostNetwork"] = false; }, "hostNetwork: true"},
      {"root writable",
       [&](Docs &d) { ctr(d)["securityContext"]["readOnlyRootFilesystem"] = false; },
       "readOnlyRootFilesystem"},
      {"probe on another port", [&](Docs &d) { ctr(d)["livenessProbe"]["httpGet"]["port"] = 9478; },
       "livenessProbe: not GET /metrics"},
      {"metrics on loopback only",
       [&](Docs &d) { config_text(d, "0.0.0.0:9477", "127.0.0.1:9477"); },
       "is not where the kubelet asks"},
      {"a config the parser refuses", [&](Docs &d) { config_text(d, "rate: 10000", "rate: fast"); },
       "refused by the agent's parser"},
      {"tls beside the Secret's volume",
       [&](Docs &d) { config_text(d, "/etc/bpfgate/tls/tls.key", "/etc/bpfgate/tls.key"); },
       "/etc/bpfgate/tls.key (fleet.tls) is on no volume"},
      {"tls not a key of the Secret",
       [&](Docs &d) { config_text(d, "/etc/bpfgate/tls/tls.key", "/etc/bpfgate/tls/client.key"); },
       "is not a file of the Secret's volume"},
      {"state_dir not on the host",
       [&](Docs &d) {
         for (auto v : pod(d)["volumes"])
           if (v["name"].Scalar() == "state") {
             v.remove("hostPath");
             v["emptyDir"] = YAML::Node(YAML::NodeType::Map);
           }
       },
       "is not the host's directory"},
      {"bpffs not mounted",
       [&](Docs &d) {
         YAML::Node keep;
         for (const auto &m : ctr(d)["volumeMounts"])
           if (m["mountPath"].Scalar() != "/sys/fs/bpf")
             keep.push_back(static_cast<const YAML::Node &>(m));
         ctr(d)["volumeMounts"] = keep;
       },
       "/sys/fs/bpf (bpffs) is on no volume"},
      {"config path not the ConfigMap's",
       [&](Docs &d) {
         auto args = ctr(d)["args"];
         for (size_t i = 0; i < args.size(); ++i)
           if (args[i].Scalar() == "--config")
             args[i + 1] = "/etc/bpfgate/bpfgate.yaml";
       },
       "/etc/bpfgate/bpfgate.yaml (--config) is on no volume"},
      {"no keep-datapath",
       [&](Docs &d) {
         YAML::Node keep;
         for (const auto &a : ctr(d)["args"])
           if (a.Scalar() != "--keep-datapath")
             keep.push_back(a.Scalar());
         ctr(d)["args"] = keep;
         config_text(d, "keep_datapath: true", "keep_datapath: false");
       },
       "a pod restart would detach"},
      {"too little memory", [&](Docs &d) { ctr(d)["resources"]["limits"]["memory"] = "64Mi"; },
       "leaves no room for the BPF maps"},
      {"no toleration", [&](Docs &d) { pod(d).remove("tolerations"); }, "a toleration"},
      {"update two at a time",
       [&](Docs &d) {
         d["DaemonSet"]["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = 2;
       },
       "maxUnavailable 1"},
  };
  for (const auto &[what, mutate, expected] : cases) {
    Docs d = clone(l.docs);
    try {
      mutate(d);
    } catch (const YAML::Exception &e) {
      ADD_FAILURE() << what << ": " << e.what();
      continue;
    }
    auto p = Checker(d).run();
    bool found = false;
    for (const auto &s : p)
      found |= s.find(expected) != std::string::npos;
    EXPECT_TRUE(found) << what << ": expected a problem with \"" << expected << "\", got:\n"
                       << joined(p);
  }
}

// The container's args, as the image's entrypoint (the real bpfgate) parses
// them: accepted (a usage error exits 2), and --config is what the agent
// reads. The file given is a config the agent refuses, so nothing starts.
TEST(KubernetesManifests, TheContainersArgsAreOnesTheCliAccepts) {
  auto l = load_manifests();
  ASSERT_TRUE(l.docs.count("DaemonSet"));
  auto dir = fs::temp_directory_path() / (unique_prefix() + "k8s-args");
  fs::create_directories(dir);
  auto bad_config = dir / "bpfgate.yaml";
  std::ofstream(bad_config) << "interfaces: [\n";
  std::string cmd = bpfgate_bin();
  const auto &args = l.docs["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]["args"];
  bool next_is_config = false;
  for (const auto &a : args) {
    cmd += " '" + (next_is_config ? bad_config.string() : a.Scalar()) + "'";
    next_is_config = a.Scalar() == "--config";
  }
  auto r = run(cmd);
  fs::remove_all(dir);
  EXPECT_EQ(r.exit_code, 1) << cmd << "\n" << r.out << r.err;
  EXPECT_NE(r.err.find(bad_config.string() + ":"), std::string::npos)
      << "the agent did not read --config's file:\n"
      << r.err;
}

// The image the DaemonSet names is the one scripts/build-image.sh makes, and
// its entrypoint is the binary the Debian package installs.
TEST(KubernetesManifests, TheImageIsTheOneTheScriptBuilds) {
  auto l = load_manifests();
  ASSERT_TRUE(l.docs.count("DaemonSet"));
  const auto &c = l.docs["DaemonSet"]["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(str(c["image"]), std::string("localhost/bpfgate:") + BPFGATE_VERSION);
  EXPECT_TRUE(str(c["imagePullPolicy"]) == "Never" || str(c["imagePullPolicy"]) == "IfNotPresent")
      << "no registry holds the image: it is loaded on each node";
  std::ifstream in(fs::path(BPFGATE_SOURCE_DIR) / "scripts" / "build-image.sh");
  std::string script((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(script.find("ENTRYPOINT [\"/usr/bin/bpfgate\"]"), std::string::npos);
  EXPECT_NE(script.find("tag=\"${tag:-localhost/bpfgate:$version}\""), std::string::npos);
  auto help = run(fs::path(BPFGATE_SOURCE_DIR).string() + "/scripts/build-image.sh --help");
  EXPECT_EQ(help.exit_code, 0) << help.err;
  EXPECT_NE(help.out.find("--save FILE"), std::string::npos) << help.out;
}

}  // namespace
}  // namespace bpfgate::test
