// The tc datapath's subcommands: tc attach, apply, detach, status, enable, disable;
// class list.
#include <net/if.h>

#include <nlohmann/json.hpp>

#include "features/tc/tc.hpp"
#include "bpf/xdp.hpp"
#include "cli/registry.hpp"
#include "util/audit.hpp"
#include "util/log.hpp"

namespace bpfgate::cli {

using nlohmann::json;

namespace {

json stages_json(const core::TcStages &s) {
  json j = json::object();
  for (uint32_t i = 0; i < BG_TC_STAGE_NR; i++)
    j[core::stage_name(i)] = s[i];
  return j;
}

std::string stages_text(const core::TcStages &s) {
  std::string out;
  for (uint32_t i = 0; i < BG_TC_STAGE_NR; i++)
    out += fmt::format("{}{} {}", i ? ", " : "", core::stage_name(i), s[i] ? "on" : "off");
  return out;
}

std::optional<unsigned> priority_of(uint32_t skb_priority) {
  if (!skb_priority || (skb_priority >> 16) != BG_TC_HTB_MAJOR)
    return std::nullopt;
  return (skb_priority & 0xffff) - BG_TC_HTB_MINOR_BASE;
}

Result<std::vector<std::string>> interfaces_of(const Globals &g, const std::string &iface) {
  if (!iface.empty())
    return std::vector<std::string>{iface};
  auto all = agent::tc_pinned_interfaces(g.bpffs);
  if (!all)
    return all.error();
  if (all->empty())
    return make_error(ENOENT,
                      "bpfgate's tc datapath is not attached to any interface; see `bpfgate tc "
                      "attach`");
  return all;
}

json status_json(const agent::TcStatus &s) {
  json j = {{"iface", s.iface},
            {"ifindex", s.ifindex},
            {"attached", s.attached},
            {"ingress_prog_id", s.ingress_prog_id},
            {"egress_prog_id", s.egress_prog_id},
            {"generation", s.config.generation},
            {"classes", s.classes},
            {"stages", stages_json(s.stages)},
            {"clsact_owned", (s.config.owned & BG_TC_OWN_CLSACT) != 0}};
  if (s.config.htb_rate_bps)
    j["htb"] = {{"rate_bps", s.config.htb_rate_bps},
                {"default_priority", s.config.htb_default},
                {"owned", (s.config.owned & BG_TC_OWN_HTB) != 0},
                {"handle", fmt::format("{:x}:", BG_TC_HTB_MAJOR)}};
  else
    j["htb"] = nullptr;
  return j;
}

void print_status(const agent::TcStatus &s) {
  if (!s.ifindex)
    fmt::print("{}: pinned, but the interface is gone (stale; `bpfgate tc detach {}` cleans up)\n",
               s.iface, s.iface);
  else if (!s.attached)
    fmt::print("{}: pinned, but our filters are not attached (ingress {}, egress {})\n", s.iface,
               s.ingress_prog_id, s.egress_prog_id);
  else
    fmt::print("{}: attached (ingress program {}, egress program {}), generation {}, {} class{}\n",
               s.iface, s.ingress_prog_id, s.egress_prog_id, s.config.generation, s.classes,
               s.classes == 1 ? "" : "es");
  fmt::print("  stages: {}\n", stages_text(s.stages));
  if (s.config.htb_rate_bps)
    fmt::print("  htb: root {:x}: at {}, unclassified traffic at priority {}{}\n", BG_TC_HTB_MAJOR,
               core::format_rate_bps(static_cast<double>(s.config.htb_rate_bps)),
               s.config.htb_default,
               (s.config.owned & BG_TC_OWN_HTB) ? " (set up by bpfgate)" : "");
  fmt::print("  clsact: {}\n",
             (s.config.owned & BG_TC_OWN_CLSACT)
                 ? "created by bpfgate (removed at detach if nothing else uses it)"
                 : "was there before bpfgate (stays at detach)");
}

struct AttachOpts {
  std::string iface, config;
};

// Classes, HTB and stages from a config file's tc: section, and the file's hash.
struct FileSetup {
  agent::TcSetup setup;
  std::string hash;
};
Result<FileSetup> setup_from(const std::string &file, const std::string &iface) {
  auto c = core::load_config(file, core::ConfigFor::tc);
  if (!c)
    return c.error();
  if (!c->tc)
    return make_error(EINVAL,
                      "{} has no tc section: add `tc: {{interfaces: [{}], classes: [...]}}`", file,
                      iface);
  if (auto st = agent::tc_check_environment(*c); !st)
    return st.error();
  auto setup = agent::tc_setup_of(*c->tc);
  if (!setup)
    return setup.error();
  return FileSetup{*setup, c->hash};
}

int cmd_tc_attach(const Globals &g, const AttachOpts &o) {
  FileSetup setup;
  if (!o.config.empty()) {
    auto s = setup_from(o.config, o.iface);
    if (!s)
      return fail(s.error());
    setup = *s;
  }
  auto s = agent::tc_attach(g.bpffs, o.iface, setup.setup);
  if (!s)
    return fail(s.error());
  audit::Entry e("tc_attach", audit::by_cli());
  e.set("iface", o.iface)
      .set("ingress_prog_id", s->ingress_prog_id)
      .set("egress_prog_id", s->egress_prog_id)
      .set("classes", s->classes);
  if (!o.config.empty())
    e.set("path", o.config).config(setup.hash);
  e.write();
  if (g.json) {
    fmt::print("{}\n", status_json(*s).dump());
  } else {
    fmt::print("tc datapath attached to {} (ingress program {}, egress program {}), {} class{}\n",
               o.iface, s->ingress_prog_id, s->egress_prog_id, s->classes,
               s->classes == 1 ? "" : "es");
    fmt::print("  stages: {}\n", stages_text(s->stages));
  }
  return 0;
}

int cmd_tc_apply(const Globals &g, const AttachOpts &o) {
  auto setup = setup_from(o.config, o.iface);
  if (!setup)
    return fail(setup.error());
  auto p = agent::PinnedTc::open(g.bpffs, o.iface);
  if (!p)
    return fail(p.error());
  if (auto st = p->apply(setup->setup); !st)
    return fail(st.error().context("apply to " + o.iface));
  auto s = p->status();
  if (!s)
    return fail(s.error());
  audit::Entry("tc_apply", audit::by_cli())
      .set("iface", o.iface)
      .set("generation", s->config.generation)
      .set("classes", s->classes)
      .set("path", o.config)
      .config(setup->hash)
      .write();
  if (g.json)
    fmt::print("{}\n", status_json(*s).dump());
  else
    fmt::print("{}: applied {} (generation {}, {} class{})\n", o.iface, o.config,
               s->config.generation, s->classes, s->classes == 1 ? "" : "es");
  return 0;
}

int cmd_tc_detach(const Globals &g, const std::string &iface) {
  if (auto st = agent::tc_detach(g.bpffs, iface); !st)
    return fail(st.error());
  audit::Entry("tc_detach", audit::by_cli()).set("iface", iface).write();
  if (g.json)
    fmt::print("{}\n", json{{"iface", iface}, {"detached", true}}.dump());
  else
    fmt::print("tc datapath detached from {}\n", iface);
  return 0;
}

int cmd_tc_status(const Globals &g, const std::string &iface) {
  std::vector<std::string> names;
  if (!iface.empty()) {
    names.push_back(iface);
  } else {
    auto all = agent::tc_pinned_interfaces(g.bpffs);
    if (!all)
      return fail(all.error());
    names = *all;
  }
  json arr = json::array();
  if (names.empty() && !g.json)
    fmt::print("bpfgate's tc datapath is not attached anywhere\n");
  for (const auto &n : names) {
    auto p = agent::PinnedTc::open(g.bpffs, n);
    if (!p)
      return fail(p.error());
    auto s = p->status();
    if (!s)
      return fail(s.error().context(n));
    if (g.json)
      arr.push_back(status_json(*s));
    else
      print_status(*s);
  }
  if (g.json)
    fmt::print("{}\n", json{{"interfaces", arr}}.dump());
  return 0;
}

struct StageOpts {
  std::string iface, stage;
};

int cmd_tc_stage(const Globals &g, const StageOpts &o, bool on) {
  auto stage = core::parse_stage(o.stage);
  if (!stage)
    return fail(make_error(EINVAL,
                           "no stage '{}': the stages are parse, classify, police, mirror and "
                           "count",
                           o.stage));
  auto names = interfaces_of(g, o.iface);
  if (!names)
    return fail(names.error());
  for (const auto &n : *names) {
    auto p = agent::PinnedTc::open(g.bpffs, n);
    if (!p)
      return fail(p.error());
    if (auto st = p->set_stage(*stage, on); !st)
      return fail(st.error().context(n));
    audit::Entry(on ? "tc_stage_enable" : "tc_stage_disable", audit::by_cli())
        .set("iface", n)
        .set("stage", o.stage)
        .write();
    if (!g.json)
      fmt::print("{}: {} stage {}\n", n, o.stage, on ? "enabled" : "disabled");
  }
  if (g.json)
    fmt::print("{}\n", json{{"stage", o.stage}, {"enabled", on}, {"interfaces", *names}}.dump());
  return 0;
}

json class_json(const std::string &iface, const agent::TcClassStats &c) {
  json j = {{"iface", iface},
            {"name", c.unclassified ? json(nullptr) : json(c.name)},
            {"unclassified", c.unclassified},
            {"packets", c.packets},
            {"bytes", c.bytes},
            {"drops", c.drops},
            {"marked", c.marked},
            {"mirrored", c.mirrored},
            {"rate_bps", c.rate_bps}};
  if (c.unclassified)
    return j;
  const bg_tc_class &d = c.def;
  j["position"] = c.position;
  j["direction"] = core::direction_name(d.dirs);
  j["limit_bps"] = d.rate_bps ? json(d.rate_bps) : json(nullptr);
  j["burst_bytes"] = d.rate_bps ? json(d.burst_bytes) : json(nullptr);
  j["exceed"] = d.rate_bps ? json(d.exceed == BG_TC_EXCEED_MARK ? "mark" : "drop") : json(nullptr);
  auto prio = priority_of(d.skb_priority);
  j["priority"] = prio ? json(*prio) : json(nullptr);
  j["dscp"] = (d.flags & BG_TC_CLASS_SET_DSCP) ? json(d.set_dscp) : json(nullptr);
  if (d.mirror_ifindex) {
    char name[IF_NAMESIZE] = {};
    j["mirror"] = {{"ifindex", d.mirror_ifindex},
                   {"iface", if_indextoname(d.mirror_ifindex, name) ? name : ""},
                   {"sample", d.mirror_sample}};
  } else {
    j["mirror"] = nullptr;
  }
  return j;
}

int cmd_class_list(const Globals &g, const std::string &iface) {
  auto names = interfaces_of(g, iface);
  if (!names)
    return fail(names.error());
  json arr = json::array();
  for (const auto &n : *names) {
    auto p = agent::PinnedTc::open(g.bpffs, n);
    if (!p)
      return fail(p.error());
    auto stats = p->datapath().class_stats();
    if (!stats)
      return fail(stats.error().context(n));
    if (g.json) {
      for (const auto &c : *stats)
        arr.push_back(class_json(n, c));
      continue;
    }
    fmt::print("{}:\n  {:<20} {:<7} {:>12} {:>14} {:>10} {:>9} {:>9} {:>12} {:>12}\n", n, "CLASS",
               "DIR", "PACKETS", "BYTES", "DROPS", "MARKED", "MIRRORED", "RATE", "LIMIT");
    for (const auto &c : *stats) {
      const bg_tc_class &d = c.def;
      fmt::print("  {:<20} {:<7} {:>12} {:>14} {:>10} {:>9} {:>9} {:>12} {:>12}\n",
                 c.unclassified ? "(no class)" : c.name,
                 c.unclassified ? "-" : core::direction_name(d.dirs), c.packets, c.bytes, c.drops,
                 c.marked, c.mirrored, core::format_rate_bps(c.rate_bps),
                 d.rate_bps ? core::format_rate_bps(static_cast<double>(d.rate_bps)) : "-");
    }
  }
  if (g.json)
    fmt::print("{}\n", json{{"classes", arr}}.dump());
  return 0;
}

}  // namespace

void add_tc_commands(Registry &r) {
  auto *tc = r.app().add_subcommand("tc", "the tc datapath: classes, policing, priorities, mirror");
  tc->require_subcommand(1);

  auto &ao = r.keep<AttachOpts>();
  auto *a = tc->add_subcommand("attach", "load the tc programs and attach them to clsact");
  a->add_option("IFACE", ao.iface, "interface")->required()->check(iface_name());
  a->add_option("-c,--config", ao.config, "take classes, HTB and stages from this config's tc:");
  r.add(a, [&ao, &g = r.globals()] { return cmd_tc_attach(g, ao); });

  auto &po = r.keep<AttachOpts>();
  auto *p = tc->add_subcommand(
      "apply", "switch an attached datapath to a config's classes, HTB and stages (no reload)");
  p->add_option("IFACE", po.iface, "interface")->required()->check(iface_name());
  p->add_option("-c,--config", po.config, "config file whose tc: section to apply")->required();
  r.add(p, [&po, &g = r.globals()] { return cmd_tc_apply(g, po); });

  auto &detach_iface = r.keep<std::string>();
  auto *d = tc->add_subcommand(
      "detach", "remove the tc programs, the HTB and clsact qdiscs bpfgate set up, the pins");
  d->add_option("IFACE", detach_iface, "interface")->required()->check(iface_name());
  r.add(d, [&detach_iface, &g = r.globals()] { return cmd_tc_detach(g, detach_iface); });

  auto &status_iface = r.keep<std::string>();
  auto *st = tc->add_subcommand("status", "where the tc datapath runs, its stages and qdiscs");
  st->add_option("IFACE", status_iface, "only this interface")->check(iface_name());
  r.add(st, [&status_iface, &g = r.globals()] { return cmd_tc_status(g, status_iface); });

  for (bool on : {true, false}) {
    auto &so = r.keep<StageOpts>();
    auto *s = tc->add_subcommand(on ? "enable" : "disable",
                                 on ? "put a stage back in the chain (no reload)"
                                    : "take a stage out of the chain (no reload)");
    s->add_option("STAGE", so.stage, "parse|classify|police|mirror|count")->required();
    s->add_option("IFACE", so.iface, "interface (default: every one attached)")
        ->check(iface_name());
    r.add(s, [&so, on, &g = r.globals()] { return cmd_tc_stage(g, so, on); });
  }

  auto *cls = r.app().add_subcommand("class", "the tc datapath's classes");
  cls->require_subcommand(1);
  auto &list_iface = r.keep<std::string>();
  auto *l = cls->add_subcommand("list", "per class: packets, bytes, drops, marks, mirrored, rate");
  l->add_option("IFACE", list_iface, "interface (default: every one attached)")
      ->check(iface_name());
  r.add(l, [&list_iface, &g = r.globals()] { return cmd_class_list(g, list_iface); });
}

}  // namespace bpfgate::cli
