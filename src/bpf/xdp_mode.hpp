// The XDP attach modes and their names: the one parser of a mode, for the
// --mode flag and the config's interfaces[].mode. Header-only, so that the
// config (bpfgate_core, which links no libbpf) reads modes with it too.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace bpfgate::bpf {

enum class XdpMode { kAuto, kNative, kGeneric, kOffload };

inline std::string to_string(XdpMode mode) {
  switch (mode) {
    case XdpMode::kAuto:
      return "auto";
    case XdpMode::kNative:
      return "native";
    case XdpMode::kGeneric:
      return "generic";
    case XdpMode::kOffload:
      return "offload";
  }
  return "?";
}

// "auto", "native" (or drv), "generic" (or skb), "offload" (or hw).
inline std::optional<XdpMode> parse_xdp_mode(std::string_view s) {
  if (s == "auto")
    return XdpMode::kAuto;
  if (s == "native" || s == "drv")
    return XdpMode::kNative;
  if (s == "generic" || s == "skb")
    return XdpMode::kGeneric;
  if (s == "offload" || s == "hw")
    return XdpMode::kOffload;
  return std::nullopt;
}

}  // namespace bpfgate::bpf
