#include "features/fleet/etcd_client.hpp"

#include <curl/curl.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <mutex>
#include <thread>

namespace bpfgate::fleet {

using nlohmann::json;

namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
// etcd's gRPC codes that another endpoint (or a later try) may answer.
constexpr int kUnavailable = 14, kUnauthenticated = 16, kDeadline = 4;

int64_t num(const json &j, const char *key) {
  if (!j.contains(key))
    return 0;
  const auto &v = j.at(key);
  if (v.is_string())
    return std::strtoll(v.get<std::string>().c_str(), nullptr, 10);
  return v.is_number() ? v.get<int64_t>() : 0;
}

size_t append_cb(char *p, size_t size, size_t n, void *out) {
  static_cast<std::string *>(out)->append(p, size * n);
  return size * n;
}

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

KeyValue kv_of(const json &j) {
  KeyValue kv;
  base64_decode(j.value("key", ""), kv.key);
  base64_decode(j.value("value", ""), kv.value);
  kv.mod_revision = num(j, "mod_revision");
  kv.lease = num(j, "lease");
  return kv;
}

}  // namespace

std::string base64_encode(const std::string &in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = uint8_t(in[i]) << 16 | uint8_t(in[i + 1]) << 8 | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6)
      out += kB64[(v >> s) & 63];
  }
  if (i < in.size()) {
    uint32_t v = uint8_t(in[i]) << 16 | (i + 1 < in.size() ? uint8_t(in[i + 1]) << 8 : 0);
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += i + 1 < in.size() ? kB64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool base64_decode(const std::string &in, std::string &out) {
  out.clear();
  uint32_t v = 0;
  int bits = 0;
  size_t pad = 0;
  for (char c : in) {
    if (c == '=') {
      pad++;
      continue;
    }
    const char *p = std::strchr(kB64, c);
    if (!p || !c || pad)
      return false;
    v = v << 6 | static_cast<uint32_t>(p - kB64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((v >> bits) & 0xff);
    }
  }
  return pad <= 2 && (in.size() % 4 == 0);
}

std::string prefix_end(const std::string &prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    if (static_cast<uint8_t>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

struct EtcdClient::Impl {
  EtcdOptions o;
  CURL *easy = nullptr;
  size_t current = 0;  // index in o.endpoints
  std::string token;

  // One POST of `body` to the current endpoint. http: the status, 0 on a
  // transport error (then err says it).
  long post(CURL *h, const std::string &path, const std::string &body, std::string &out,
            std::string &err, long timeout_ms);
  void setup(CURL *h, const std::string &url, const std::string &body, long timeout_ms,
             curl_slist *&headers);
  Result<json> call(const std::string &path, const json &body, bool retry_auth = true);
  Status authenticate();
};

void EtcdClient::Impl::setup(CURL *h, const std::string &url, const std::string &body,
                             long timeout_ms, curl_slist *&headers) {
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms ? std::min(timeout_ms, 2000L) : 2000L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  if (!o.ca.empty())
    curl_easy_setopt(h, CURLOPT_CAINFO, o.ca.c_str());
  if (!o.cert.empty()) {
    curl_easy_setopt(h, CURLOPT_SSLCERT, o.cert.c_str());
    curl_easy_setopt(h, CURLOPT_SSLKEY, o.key.c_str());
  }
  headers = curl_slist_append(nullptr, "Content-Type: application/json");
  if (!token.empty())
    headers = curl_slist_append(headers, ("Authorization: " + token).c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
}

long EtcdClient::Impl::post(CURL *h, const std::string &path, const std::string &body,
                            std::string &out, std::string &err, long timeout_ms) {
  curl_slist *headers = nullptr;
  std::string url = o.endpoints[current] + path;
  setup(h, url, body, timeout_ms, headers);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, append_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
  CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(headers);
  long status = 0;
  if (rc != CURLE_OK) {
    err = fmt::format("{}: {}", o.endpoints[current], curl_easy_strerror(rc));
    return 0;
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

Result<json> EtcdClient::Impl::call(const std::string &path, const json &body, bool retry_auth) {
  if (!o.user.empty() && token.empty() && path != "/v3/auth/authenticate")
    if (auto st = authenticate(); !st)
      return st.error();
  std::string text = body.dump(), last;
  long backoff = o.backoff_ms;
  for (int round = 0; round < o.rounds; round++) {
    if (round > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
      backoff = std::min(backoff * 2, o.backoff_max_ms);
    }
    for (size_t tried = 0; tried < o.endpoints.size(); tried++) {
      std::string out, err;
      long status = post(easy, path, text, out, err, o.timeout_ms);
      json j = status ? json::parse(out, nullptr, false) : json();
      int code = j.is_object() ? static_cast<int>(num(j, "code")) : 0;
      if (status == 200 && j.is_object())
        return j;
      if (status && j.is_object() && code == kUnauthenticated && retry_auth && !o.user.empty()) {
        token.clear();
        return call(path, body, false);
      }
      if (status && code != kUnavailable && code != kDeadline && status < 500)
        return make_error(EPROTO, "etcd {}{}: {}", o.endpoints[current], path,
                          j.is_object() ? j.value("error", out) : out.substr(0, 200));
      last = err.empty() ? fmt::format("{}{}: HTTP {}", o.endpoints[current], path, status) : err;
      current = (current + 1) % o.endpoints.size();
    }
  }
  return make_error(EHOSTUNREACH, "etcd unreachable ({})", last);
}

Status EtcdClient::Impl::authenticate() {
  auto r = call("/v3/auth/authenticate", json{{"name", o.user}, {"password", o.password}}, false);
  if (!r)
    return r.error().context("etcd auth as " + o.user);
  token = r->value("token", "");
  if (token.empty())
    return make_error(EACCES, "etcd auth as {}: no token in the answer", o.user);
  return {};
}

EtcdClient::EtcdClient(EtcdOptions o) : impl_(std::make_unique<Impl>()) {
  init_curl_once();
  impl_->o = std::move(o);
  impl_->easy = curl_easy_init();
}

EtcdClient::~EtcdClient() {
  if (impl_->easy)
    curl_easy_cleanup(impl_->easy);
}

const std::string &EtcdClient::endpoint() const {
  return impl_->o.endpoints[impl_->current];
}

Status EtcdClient::authenticate() {
  return impl_->authenticate();
}

Result<int64_t> EtcdClient::put(const std::string &key, const std::string &value, int64_t lease) {
  json b{{"key", base64_encode(key)}, {"value", base64_encode(value)}};
  if (lease)
    b["lease"] = std::to_string(lease);
  auto r = impl_->call("/v3/kv/put", b);
  if (!r)
    return r.error();
  return num((*r)["header"], "revision");
}

Result<int64_t> EtcdClient::del(const std::string &key, bool prefix) {
  json b{{"key", base64_encode(key)}};
  if (prefix)
    b["range_end"] = base64_encode(prefix_end(key));
  auto r = impl_->call("/v3/kv/deleterange", b);
  if (!r)
    return r.error();
  return num(*r, "deleted");
}

Result<RangeResult> EtcdClient::range(const std::string &key, bool prefix, int64_t revision,
                                      bool keys_only) {
  json b{{"key", base64_encode(key)}};
  if (prefix)
    b["range_end"] = base64_encode(prefix_end(key));
  if (revision)
    b["revision"] = std::to_string(revision);
  if (keys_only)
    b["keys_only"] = true;
  auto r = impl_->call("/v3/kv/range", b);
  if (!r)
    return r.error();
  RangeResult out;
  out.revision = num((*r)["header"], "revision");
  if (r->contains("kvs"))
    for (const auto &kv : (*r)["kvs"])
      out.kvs.push_back(kv_of(kv));
  return out;
}

Result<int64_t> EtcdClient::txn(const std::vector<TxnOp> &ops) {
  json success = json::array();
  for (const auto &op : ops) {
    if (op.put) {
      json p{{"key", base64_encode(op.key)}, {"value", base64_encode(op.value)}};
      if (op.lease)
        p["lease"] = std::to_string(op.lease);
      success.push_back({{"request_put", p}});
    } else {
      success.push_back({{"request_delete_range", {{"key", base64_encode(op.key)}}}});
    }
  }
  auto r = impl_->call("/v3/kv/txn", json{{"success", success}});
  if (!r)
    return r.error();
  return num((*r)["header"], "revision");
}

Result<int64_t> EtcdClient::lease_grant(int64_t ttl_s) {
  auto r = impl_->call("/v3/lease/grant", json{{"TTL", std::to_string(ttl_s)}});
  if (!r)
    return r.error();
  return num(*r, "ID");
}

Status EtcdClient::lease_revoke(int64_t id) {
  auto r = impl_->call("/v3/lease/revoke", json{{"ID", std::to_string(id)}});
  if (!r)
    return r.error();
  return {};
}

Status EtcdClient::compact(int64_t revision) {
  auto r = impl_->call("/v3/kv/compaction", json{{"revision", std::to_string(revision)}});
  if (!r)
    return r.error();
  return {};
}

namespace {

// What a watch stream has said so far; fed chunk by chunk.
struct WatchState {
  const std::function<void()> *on_created;
  const EtcdClient::OnEvents *on_events;
  const std::atomic<bool> *stop;
  std::string buf;
  WatchEnd end;
  std::string error;
  bool created = false;

  // One JSON object of the stream: false to end the watch.
  bool message(const std::string &line) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_object())
      return true;  // a blank line between messages
    if (j.contains("error")) {
      const auto &e = j["error"];
      error = e.is_object() ? e.value("message", e.dump()) : e.dump();
      return false;
    }
    const json &r = j.contains("result") ? j["result"] : j;
    if (num(r, "compact_revision") > 0) {
      end.compact_revision = num(r, "compact_revision");
      return false;
    }
    if (r.value("created", false) && !created) {
      created = true;
      (*on_created)();
    }
    if (r.value("canceled", false)) {
      error = "watch canceled: " + r.value("cancel_reason", std::string("no reason given"));
      return false;
    }
    if (!r.contains("events"))
      return true;
    std::vector<WatchEvent> events;
    for (const auto &e : r["events"])
      events.push_back(WatchEvent{e.value("type", std::string("PUT")) != "DELETE", kv_of(e["kv"])});
    (*on_events)(events, num(r.contains("header") ? r["header"] : json::object(), "revision"));
    return true;
  }
};

size_t watch_write(char *p, size_t size, size_t n, void *arg) {
  auto *w = static_cast<WatchState *>(arg);
  w->buf.append(p, size * n);
  for (size_t nl; (nl = w->buf.find('\n')) != std::string::npos;) {
    std::string line = w->buf.substr(0, nl);
    w->buf.erase(0, nl + 1);
    if (!w->message(line))
      return 0;  // ends the transfer
  }
  if (w->buf.size() > (64u << 20)) {
    w->error = "a watch message over 64 MiB";
    return 0;
  }
  return size * n;
}

int watch_progress(void *arg, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<WatchState *>(arg)->stop->load() ? 1 : 0;
}

}  // namespace

Result<WatchEnd> EtcdClient::watch(const std::string &prefix, int64_t start_revision,
                                   const std::function<void()> &on_created,
                                   const OnEvents &on_events, const std::atomic<bool> &stop) {
  auto &d = *impl_;
  if (!d.o.user.empty() && d.token.empty())
    if (auto st = d.authenticate(); !st)
      return st.error();
  json create{{"key", base64_encode(prefix)},
              {"range_end", base64_encode(prefix_end(prefix))},
              {"start_revision", std::to_string(start_revision)}};
  std::string body = json{{"create_request", create}}.dump();
  WatchState w{&on_created, &on_events, &stop, {}, {}, {}};
  CURL *h = curl_easy_init();
  curl_slist *headers = nullptr;
  d.setup(h, d.o.endpoints[d.current] + "/v3/watch", body, 0, headers);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, watch_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &w);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, watch_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &w);
  CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(headers);
  curl_easy_cleanup(h);
  if (stop.load()) {
    w.end.stopped = true;
    return w.end;
  }
  if (w.end.compact_revision > 0)
    return w.end;
  std::string where = d.o.endpoints[d.current];
  if (!w.created || rc != CURLE_OK)  // the next try goes to the next endpoint
    d.current = (d.current + 1) % d.o.endpoints.size();
  if (!w.error.empty()) {
    d.token.clear();  // an expired token: the next watch authenticates again
    return make_error(EPROTO, "etcd {} watch: {}", where, w.error);
  }
  return make_error(EHOSTUNREACH, "etcd {} watch: {}", where,
                    rc == CURLE_OK ? "the stream ended" : curl_easy_strerror(rc));
}

}  // namespace bpfgate::fleet
