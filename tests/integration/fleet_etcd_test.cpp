// The fleet's etcd client (features/fleet/etcd_client.hpp) against a real
// etcd (Debian's etcd-server 3.4) in a namespace of the test's: puts, reads,
// deletes, transactions, leases that expire, a watch from a revision, a
// watch told of a compaction, failover to the next endpoint.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "features/fleet/etcd_client.hpp"
#include "support/etcd.hpp"

namespace bpfgate::test {
namespace {

using fleet::EtcdClient;
using fleet::EtcdOptions;
using namespace std::chrono_literals;

class EtcdClientTest : public ::testing::Test {
 protected:
  EtcdClientTest() {
    run_ok(ns_.exec() + "ip link set lo up");
    run_ok(ns_.exec() + "ip addr add 198.18.99.1/32 dev lo");
    started_ = etcd_.start();
  }
  void SetUp() override { ASSERT_TRUE(started_) << etcd_.log(); }

  EtcdOptions opts() const { return EtcdOptions{.endpoints = {etcd_.endpoint()}}; }
  // Client calls open their sockets in the etcd's namespace.
  void in_ns(const std::function<void()> &fn) { ns_.within(fn); }

  Netns ns_{unique_prefix() + "etcd"};
  EtcdProcess etcd_{ns_, {"198.18.99.1"}};
  bool started_ = false;
};

TEST_F(EtcdClientTest, PutRangeDelete) {
  in_ns([&] {
    EtcdClient c(opts());
    auto r1 = c.put("/t/a", "one");
    ASSERT_TRUE(r1) << r1.error().what();
    ASSERT_TRUE(c.put("/t/b", std::string("two\0bytes", 9)));
    ASSERT_TRUE(c.put("/u/c", "elsewhere"));
    auto r = c.range("/t/", true);
    ASSERT_TRUE(r) << r.error().what();
    ASSERT_EQ(r->kvs.size(), 2u);
    EXPECT_EQ(r->kvs[0].key, "/t/a");
    EXPECT_EQ(r->kvs[0].value, "one");
    EXPECT_EQ(r->kvs[0].mod_revision, *r1);
    EXPECT_EQ(r->kvs[1].value, std::string("two\0bytes", 9));
    EXPECT_GE(r->revision, *r1 + 2);
    auto gone = c.del("/t/a");
    ASSERT_TRUE(gone);
    EXPECT_EQ(*gone, 1);
    EXPECT_EQ(c.range("/t/", true)->kvs.size(), 1u);
    // An older revision still reads what was there.
    EXPECT_EQ(c.range("/t/", true, *r1 + 1)->kvs.size(), 2u);
  });
}

TEST_F(EtcdClientTest, TxnWritesAllInOneRevision) {
  in_ns([&] {
    EtcdClient c(opts());
    ASSERT_TRUE(c.put("/t/old", "x"));
    auto rev = c.txn({{true, "/t/1", "a", 0}, {true, "/t/2", "b", 0}, {false, "/t/old", "", 0}});
    ASSERT_TRUE(rev) << rev.error().what();
    auto r = c.range("/t/", true);
    ASSERT_EQ(r->kvs.size(), 2u);
    EXPECT_EQ(r->kvs[0].mod_revision, *rev);
    EXPECT_EQ(r->kvs[1].mod_revision, *rev);
  });
}

TEST_F(EtcdClientTest, AKeyGoesWithItsLease) {
  in_ns([&] {
    EtcdClient c(opts());
    auto lease = c.lease_grant(2);
    ASSERT_TRUE(lease) << lease.error().what();
    ASSERT_TRUE(c.put("/t/leased", "v", *lease));
    ASSERT_TRUE(c.put("/t/kept", "v"));
    EXPECT_EQ(c.range("/t/leased", false)->kvs.size(), 1u);
    EXPECT_EQ(c.range("/t/leased", false)->kvs[0].lease, *lease);
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!c.range("/t/leased", false)->kvs.empty() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(100ms);
    EXPECT_TRUE(c.range("/t/leased", false)->kvs.empty()) << "the lease did not expire in 10 s";
    EXPECT_EQ(c.range("/t/kept", false)->kvs.size(), 1u);
    auto l2 = c.lease_grant(60);
    ASSERT_TRUE(c.put("/t/revoked", "v", *l2));
    ASSERT_TRUE(c.lease_revoke(*l2));
    EXPECT_TRUE(c.range("/t/revoked", false)->kvs.empty());
  });
}

TEST_F(EtcdClientTest, WatchDeliversEventsFromARevision) {
  in_ns([&] {
    EtcdClient c(opts());
    auto first = c.put("/w/a", "1");
    ASSERT_TRUE(first);
    ASSERT_TRUE(c.put("/w/b", "2"));
    ASSERT_TRUE(c.del("/w/a"));
    ASSERT_TRUE(c.put("/x/other", "not watched"));
    std::atomic<bool> stop{false};
    std::vector<fleet::WatchEvent> seen;
    bool created = false;
    EtcdClient w(opts());
    std::thread later([&] {
      std::this_thread::sleep_for(300ms);
      (void)c.put("/w/c", "after");  // delivered live, after the history
      std::this_thread::sleep_for(500ms);
      stop = true;
    });
    auto end = w.watch(
        "/w/", *first, [&] { created = true; },
        [&](std::vector<fleet::WatchEvent> &ev, int64_t) {
          seen.insert(seen.end(), ev.begin(), ev.end());
        },
        stop);
    later.join();
    ASSERT_TRUE(end) << end.error().what();
    EXPECT_TRUE(end->stopped);
    EXPECT_TRUE(created);
    ASSERT_EQ(seen.size(), 4u);
    EXPECT_TRUE(seen[0].put && seen[0].kv.key == "/w/a" && seen[0].kv.value == "1");
    EXPECT_TRUE(seen[1].put && seen[1].kv.key == "/w/b");
    EXPECT_TRUE(!seen[2].put && seen[2].kv.key == "/w/a");
    EXPECT_TRUE(seen[3].put && seen[3].kv.key == "/w/c" && seen[3].kv.value == "after");
    EXPECT_EQ(seen[0].kv.mod_revision, *first);
  });
}

TEST_F(EtcdClientTest, AWatchFromACompactedRevisionSaysSo) {
  in_ns([&] {
    EtcdClient c(opts());
    auto first = c.put("/w/a", "1");
    ASSERT_TRUE(first);
    auto last = c.put("/w/a", "2");
    ASSERT_TRUE(c.compact(*last));
    std::atomic<bool> stop{false};
    auto end = c.watch(
        "/w/", *first, [] {}, [](auto &, int64_t) {}, stop);
    ASSERT_TRUE(end) << end.error().what();
    EXPECT_EQ(end->compact_revision, *last);
  });
}

TEST_F(EtcdClientTest, FailsOverToTheNextEndpointAndSaysWhenNoneAnswers) {
  in_ns([&] {
    // Nothing listens on port 2999: refused at once.
    EtcdOptions o{.endpoints = {"http://198.18.99.1:2999", etcd_.endpoint()}};
    EtcdClient c(o);
    auto r = c.put("/f/a", "v");
    ASSERT_TRUE(r) << r.error().what();
    EXPECT_EQ(c.endpoint(), etcd_.endpoint());
    EtcdClient none({.endpoints = {"http://198.18.99.1:2999"}, .rounds = 3, .backoff_ms = 50});
    auto t0 = std::chrono::steady_clock::now();
    auto bad = none.put("/f/a", "v");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().err(), EHOSTUNREACH);
    EXPECT_NE(bad.error().what().find("unreachable"), std::string::npos) << bad.error().what();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  });
}

// etcd's auth: a user's token is sent with every call and the watch; no
// token, no access.
TEST_F(EtcdClientTest, AuthenticatesWithAUserAndPassword) {
  ASSERT_EQ(etcd_.etcdctl("user add root --new-user-password=rootpw").exit_code, 0);
  ASSERT_EQ(etcd_.etcdctl("auth enable").exit_code, 0);
  in_ns([&] {
    EtcdOptions o = opts();
    o.user = "root";
    o.password = "rootpw";
    EtcdClient c(o);
    auto rev = c.put("/a/k", "v");
    ASSERT_TRUE(rev) << rev.error().what();
    EXPECT_EQ(c.range("/a/", true)->kvs.size(), 1u);
    std::atomic<bool> stop{false};
    std::vector<fleet::WatchEvent> seen;
    auto end = c.watch(
        "/a/", *rev, [&] { stop = true; },
        [&](auto &ev, int64_t) { seen.insert(seen.end(), ev.begin(), ev.end()); }, stop);
    ASSERT_TRUE(end) << end.error().what();
    EtcdClient anonymous(opts());
    auto refused = anonymous.put("/a/k", "v");
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().err(), EPROTO) << refused.error().what();
    o.password = "wrong";
    EtcdClient wrong(o);
    EXPECT_FALSE(wrong.put("/a/k", "v"));
  });
}

// TLS: etcd serving https and asking for a client certificate signed by its CA.
class EtcdTlsTest : public EtcdClientTest {
 protected:
  EtcdTlsTest() {
    etcd_.kill();
    tls_ = make_test_certs(certs_.string(), "198.18.99.1");
    etcd_.use_tls(tls_);
    started_ = etcd_.start();
  }
  ScratchDir certs_{unique_prefix() + "-etcd-certs"};
  EtcdProcess::Tls tls_;
};

TEST_F(EtcdTlsTest, TalksTlsWithAClientCertificate) {
  ASSERT_EQ(etcd_.endpoint().rfind("https://", 0), 0u);
  in_ns([&] {
    EtcdOptions o = opts();
    o.ca = tls_.ca;
    o.cert = tls_.client_cert;
    o.key = tls_.client_key;
    EtcdClient c(o);
    auto rev = c.put("/s/k", "v");
    ASSERT_TRUE(rev) << rev.error().what();
    EXPECT_EQ(c.range("/s/", true)->kvs.size(), 1u);
    // Without the client certificate, or without the CA, nothing.
    EtcdOptions no_cert = opts();
    no_cert.ca = tls_.ca;
    no_cert.rounds = 1;
    EXPECT_FALSE(EtcdClient(no_cert).put("/s/k", "v"));
    EtcdOptions no_ca = o;
    no_ca.ca.clear();
    no_ca.rounds = 1;
    EXPECT_FALSE(EtcdClient(no_ca).put("/s/k", "v"));
  });
}

}  // namespace
}  // namespace bpfgate::test
