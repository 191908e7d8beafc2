// examples/kv_server's service end to end, on both backends, with 2 workers (so about half the
// keys of every test live on the worker that did not accept the connection): each command's
// replies and redis-server 7's error texts, pipelined and inline commands, protocol errors and
// limits closing the connection, max clients, a 100-client consistency run, and redis-cli and
// redis-benchmark when installed.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "examples/kv/kv_service.h"
#include "net/server.h"
#include "runtime/runtime.h"
#include "tests/backend_params.h"
#include "tests/net/resp_client.h"
#include "tests/net/test_support.h"

namespace shardloop {
namespace {

using examples::kv::KvOptions;
using examples::kv::KvService;
using testing::bulk;
using testing::RespClient;

class KvServer : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { SHARDLOOP_SKIP_IF_UNAVAILABLE(GetParam()); }
  void TearDown() override {
    server_.reset();
    rt_.stop();
    service_.reset();  // after the workers stopped: queued channel jobs point into it
  }

  // Starts the runtime, the service and the listener.
  void start(KvOptions options = {}) {
    ASSERT_TRUE(rt_.start().ok());
    service_ = std::make_unique<KvService>(rt_, options);
    auto server = net::Server::listen(rt_, testing::loopback_any(), service_->handler(),
                                      examples::kv::server_options(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }
  const net::Address& address() const { return server_->address(); }

  // `count` keys named prefix0, prefix1, ... that include keys of both workers.
  std::vector<std::string> keys(const std::string& prefix, size_t count) {
    std::vector<std::string> out;
    bool owners[2] = {false, false};
    for (size_t i = 0; i < count; ++i) {
      out.push_back(prefix + std::to_string(i));
      owners[service_->owner_of(out.back())] = true;
    }
    EXPECT_TRUE(owners[0] && owners[1]) << "pick more keys: all on one worker";
    return out;
  }

  Runtime rt_{{.workers = 2, .backend = GetParam()}};
  std::unique_ptr<KvService> service_;
  std::unique_ptr<net::Server> server_;
};

TEST_P(KvServer, PingEchoAndCommandErrorsMatchRedis) {
  ASSERT_NO_FATAL_FAILURE(start());
  RespClient c(address());
  ASSERT_TRUE(c.connected());
  EXPECT_EQ(c.call({"PING"}), "+PONG\r\n");
  EXPECT_EQ(c.call({"ping", "hi there"}), bulk("hi there"));
  EXPECT_EQ(c.call({"PING", "a", "b"}), "-ERR wrong number of arguments for 'ping' command\r\n");
  EXPECT_EQ(c.call({"ECHO", "x\r\ny"}), bulk("x\r\ny"));
  EXPECT_EQ(c.call({"GET"}), "-ERR wrong number of arguments for 'get' command\r\n");
  EXPECT_EQ(c.call({"get", "a", "b"}), "-ERR wrong number of arguments for 'get' command\r\n");
  EXPECT_EQ(c.call({"MSET", "a", "1", "b"}),
            "-ERR wrong number of arguments for 'mset' command\r\n");
  EXPECT_EQ(c.call({"foo", "bar", "baz"}),
            "-ERR unknown command 'foo', with args beginning with: 'bar' 'baz' \r\n");
  EXPECT_EQ(c.call({"FOO"}), "-ERR unknown command 'FOO', with args beginning with: \r\n");
  EXPECT_EQ(c.call({"COMMAND"}), "*0\r\n");
  EXPECT_EQ(c.call({"COMMAND", "DOCS"}), "*0\r\n");
  EXPECT_EQ(c.call({"command", "count"}), ":18\r\n");
  EXPECT_EQ(c.call({"COMMAND", "nope"}), "-ERR unknown subcommand 'nope'. Try COMMAND HELP.\r\n");
  EXPECT_EQ(c.call({"CONFIG", "GET", "save"}), "*2\r\n" + bulk("save") + bulk(""));
  EXPECT_EQ(c.call({"CONFIG", "GET", "nothing"}), "*0\r\n");
  EXPECT_EQ(c.call({"FLUSHALL", "now"}), "-ERR syntax error\r\n");
}

TEST_P(KvServer, SetAndGetWithOptions) {
  ASSERT_NO_FATAL_FAILURE(start());
  RespClient c(address());
  for (const std::string& k : keys("set", 8)) {
    SCOPED_TRACE(k);
    EXPECT_EQ(c.call({"GET", k}), "$-1\r\n");
    EXPECT_EQ(c.call({"SET", k, "v1"}), "+OK\r\n");
    EXPECT_EQ(c.call({"GET", k}), bulk("v1"));
    EXPECT_EQ(c.call({"SET", k, "v2", "NX"}), "$-1\r\n");
    EXPECT_EQ(c.call({"SET", k, "v3", "xx"}), "+OK\r\n");
    EXPECT_EQ(c.call({"SET", k + "-new", "v", "XX"}), "$-1\r\n");
    EXPECT_EQ(c.call({"SET", k + "-new", "v", "NX", "EX", "100"}), "+OK\r\n");
    EXPECT_EQ(c.call({"TTL", k + "-new"}), ":100\r\n");
    EXPECT_EQ(c.call({"SET", k + "-new", "w"}), "+OK\r\n");  // SET clears the TTL
    EXPECT_EQ(c.call({"TTL", k + "-new"}), ":-1\r\n");
    EXPECT_EQ(c.call({"GET", k}), bulk("v3"));
  }
  EXPECT_EQ(c.call({"SET", "k", "v", "NX", "XX"}), "-ERR syntax error\r\n");
  EXPECT_EQ(c.call({"SET", "k", "v", "EX"}), "-ERR syntax error\r\n");
  EXPECT_EQ(c.call({"SET", "k", "v", "EX", "1", "PX", "5"}), "-ERR syntax error\r\n");
  EXPECT_EQ(c.call({"SET", "k", "v", "BOGUS"}), "-ERR syntax error\r\n");
  EXPECT_EQ(c.call({"SET", "k", "v", "EX", "ten"}),
            "-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ(c.call({"SET", "k", "v", "PX", "0"}), "-ERR invalid expire time in 'set' command\r\n");
  EXPECT_EQ(c.call({"SET", "k", "v", "EX", "9223372036854775807"}),
            "-ERR invalid expire time in 'set' command\r\n");
  EXPECT_EQ(c.call({"EXISTS", "k"}), ":0\r\n") << "a refused SET must not store anything";
}

TEST_P(KvServer, IncrAndDecr) {
  ASSERT_NO_FATAL_FAILURE(start());
  RespClient c(address());
  for (const std::string& k : keys("n", 8)) {
    EXPECT_EQ(c.call({"INCR", k}), ":1\r\n");
    EXPECT_EQ(c.call({"incr", k}), ":2\r\n");
    EXPECT_EQ(c.call({"DECR", k}), ":1\r\n");
    EXPECT_EQ(c.call({"GET", k}), bulk("1"));
  }
  c.call({"SET", "word", "abc"});
  EXPECT_EQ(c.call({"INCR", "word"}), "-ERR value is not an integer or out of range\r\n");
  c.call({"SET", "spaced", " 1"});
  EXPECT_EQ(c.call({"INCR", "spaced"}), "-ERR value is not an integer or out of range\r\n");
  c.call({"SET", "max", "9223372036854775807"});
  EXPECT_EQ(c.call({"INCR", "max"}), "-ERR increment or decrement would overflow\r\n");
  c.call({"SET", "min", "-9223372036854775808"});
  EXPECT_EQ(c.call({"DECR", "min"}), "-ERR increment or decrement would overflow\r\n");
  c.call({"SET", "ttl", "5", "EX", "100"});
  EXPECT_EQ(c.call({"INCR", "ttl"}), ":6\r\n");
  EXPECT_EQ(c.call({"TTL", "ttl"}), ":100\r\n") << "INCR keeps the expiry";
}

TEST_P(KvServer, MultiKeyCommandsGatherAcrossShards) {
  ASSERT_NO_FATAL_FAILURE(start());
  RespClient c(address());
  const std::vector<std::string> k = keys("m", 10);
  EXPECT_EQ(c.call({"MSET", k[0], "a", k[1], "b", k[2], "c", k[3], "d", k[4], "e"}), "+OK\r\n");
  EXPECT_EQ(
      c.call({"MGET", k[4], k[9], k[0], k[3], k[1], k[2], k[0]}),
      "*7\r\n" + bulk("e") + "$-1\r\n" + bulk("a") + bulk("d") + bulk("b") + bulk("c") + bulk("a"));
  EXPECT_EQ(c.call({"EXISTS", k[0], k[0], k[9], k[1], k[2], k[3], k[4]}), ":6\r\n");
  EXPECT_EQ(c.call({"DBSIZE"}), ":5\r\n");
  EXPECT_EQ(c.call({"DEL", k[0], k[1], k[9], k[0]}), ":2\r\n");
  EXPECT_EQ(c.call({"DBSIZE"}), ":3\r\n");
  EXPECT_EQ(c.call({"FLUSHALL"}), "+OK\r\n");
  EXPECT_EQ(c.call({"DBSIZE"}), ":0\r\n");
  EXPECT_EQ(c.call({"MGET", k[2], k[3]}), "*2\r\n$-1\r\n$-1\r\n");
}

TEST_P(KvServer, ExpireTtlAndTheSweep) {
  ASSERT_NO_FATAL_FAILURE(start({.sweep_interval = std::chrono::milliseconds(20)}));
  RespClient c(address());
  EXPECT_EQ(c.call({"EXPIRE", "missing", "10"}), ":0\r\n");
  EXPECT_EQ(c.call({"TTL", "missing"}), ":-2\r\n");
  c.call({"SET", "k", "v"});
  EXPECT_EQ(c.call({"TTL", "k"}), ":-1\r\n");
  EXPECT_EQ(c.call({"EXPIRE", "k", "100", "XX"}), ":0\r\n");
  EXPECT_EQ(c.call({"EXPIRE", "k", "100", "NX"}), ":1\r\n");
  EXPECT_EQ(c.call({"TTL", "k"}), ":100\r\n");
  EXPECT_EQ(c.call({"EXPIRE", "k", "50", "GT"}), ":0\r\n");
  EXPECT_EQ(c.call({"EXPIRE", "k", "50", "LT"}), ":1\r\n");
  EXPECT_EQ(c.call({"TTL", "k"}), ":50\r\n");
  EXPECT_EQ(c.call({"EXPIRE", "k", "5", "NX", "XX"}),
            "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n");
  EXPECT_EQ(c.call({"EXPIRE", "k", "5", "GT", "LT"}),
            "-ERR GT and LT options at the same time are not compatible\r\n");
  EXPECT_EQ(c.call({"EXPIRE", "k", "5", "SOON"}), "-ERR Unsupported option SOON\r\n");
  EXPECT_EQ(c.call({"EXPIRE", "k", "x"}), "-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ(c.call({"EXPIRE", "k", "-1"}), ":1\r\n");  // a past time deletes
  EXPECT_EQ(c.call({"EXISTS", "k"}), ":0\r\n");

  // Lazy expiry: a key read after its deadline is gone.
  c.call({"SET", "short", "v", "PX", "30"});
  std::this_thread::sleep_for(std::chrono::milliseconds(80));
  EXPECT_EQ(c.call({"GET", "short"}), "$-1\r\n");

  // The sweep: keys nobody touches again still go, on both shards.
  const std::vector<std::string> k = keys("sweep", 12);
  for (const std::string& key : k) c.call({"SET", key, "v", "PX", "20"});
  auto expired_keys = [&c] {
    std::string info = c.call({"INFO", "stats"});
    size_t at = info.find("expired_keys:");
    return at == std::string::npos ? -1 : std::atoi(info.c_str() + at + 13);
  };
  EXPECT_TRUE(
      testing::wait_until([&] { return expired_keys() == 13; }, std::chrono::milliseconds(3000)))
      << "expired_keys " << expired_keys();
}

TEST_P(KvServer, PipelinedRepliesComeInRequestOrder) {
  ASSERT_NO_FATAL_FAILURE(start());
  RespClient c(address());
  const std::vector<std::string> k = keys("p", 40);
  std::string pipeline, expected;
  for (int round = 0; round < 5; ++round) {
    for (size_t i = 0; i < k.size(); ++i) {
      const std::string v = std::to_string(round * 1000 + i);
      RespClient::append({"SET", k[i], v}, &pipeline);
      expected += "+OK\r\n";
      RespClient::append({"GET", k[i]}, &pipeline);
      expected += bulk(v);
      RespClient::append({"INCR", "counter"}, &pipeline);
      absl::StrAppend(&expected, ":", round * k.size() + i + 1, "\r\n");
      RespClient::append({"PING"}, &pipeline);
      expected += "+PONG\r\n";
    }
    RespClient::append({"MGET", k[0], k[1], k[2]}, &pipeline);
    expected += "*3\r\n" + bulk(std::to_string(round * 1000)) +
                bulk(std::to_string(round * 1000 + 1)) + bulk(std::to_string(round * 1000 + 2));
  }
  ASSERT_TRUE(c.send(pipeline));  // 805 commands in one write
  std::string got;
  while (got.size() < expected.size()) {
    std::string r = c.reply();
    if (r.empty()) break;
    got += r;
  }
  EXPECT_EQ(got, expected);
}

TEST_P(KvServer, InlineCommands) {
  ASSERT_NO_FATAL_FAILURE(start());
  RespClient c(address());
  c.send("PING\r\n");
  EXPECT_EQ(c.reply(), "+PONG\r\n");
  c.send("SET \"a key\" 'a value'\nGET \"a key\"\r\n\r\nEXISTS \"a key\" nope\n");
  EXPECT_EQ(c.reply(), "+OK\r\n");
  EXPECT_EQ(c.reply(), bulk("a value"));
  EXPECT_EQ(c.reply(), ":1\r\n") << "the blank line must get no reply";
  c.send("get\r\n");
  EXPECT_EQ(c.reply(), "-ERR wrong number of arguments for 'get' command\r\n");
}

TEST_P(KvServer, ProtocolErrorsAreAnsweredThenTheConnectionCloses) {
  ASSERT_NO_FATAL_FAILURE(start(
      {.limits = {.max_bulk_length = 1024, .max_multibulk_count = 16, .max_inline_size = 256}}));
  struct Case {
    std::string request;
    std::string reply;
  };
  const std::string before = "PING\r\n";  // answered first, as redis does
  const Case cases[] = {
      {"*abc\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
      {"*1\r\n$x\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
      {"*1\r\nfoo\r\n", "-ERR Protocol error: expected '$', got 'f'\r\n"},
      {"*1\r\n$1025\r\n", "-ERR Protocol error: invalid bulk length\r\n"},  // over max bulk
      {"*17\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},     // over max count
      {std::string(300, 'a') + "\r\n", "-ERR Protocol error: too big inline request\r\n"},
      {"SET \"unbalanced\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.request.substr(0, 40));
    RespClient client(address());
    ASSERT_TRUE(client.send(before + c.request + "PING\r\n"));
    bool closed = false;
    EXPECT_EQ(client.read_until_close(&closed), "+PONG\r\n" + c.reply);
    EXPECT_TRUE(closed);
  }
  // Within the limits all is well.
  RespClient ok(address());
  const std::string big(1024, 'v');
  EXPECT_EQ(ok.call({"SET", "big", big}), "+OK\r\n");
  EXPECT_EQ(ok.call({"GET", "big"}), bulk(big));
}

TEST_P(KvServer, QuitAnswersOkAndCloses) {
  ASSERT_NO_FATAL_FAILURE(start());
  RespClient c(address());
  c.send("PING\r\nQUIT\r\nPING\r\n");
  bool closed = false;
  EXPECT_EQ(c.read_until_close(&closed), "+PONG\r\n+OK\r\n");
  EXPECT_TRUE(closed);
}

TEST_P(KvServer, InfoHasItsSections) {
  ASSERT_NO_FATAL_FAILURE(start());
  RespClient c(address());
  c.call({"SET", "a", "1"});
  const std::string all = c.call({"INFO"});
  for (const char* s : {"# Server\r\n", "redis_version:", "# Clients\r\n",
                        "connected_clients:1\r\n", "maxclients:10000\r\n", "# Stats\r\n",
                        "total_commands_processed:2\r\n", "# Keyspace\r\n", "db0:keys=1,"}) {
    EXPECT_NE(all.find(s), std::string::npos) << s << " missing in " << all;
  }
  const std::string clients = c.call({"info", "CLIENTS"});
  EXPECT_NE(clients.find("# Clients"), std::string::npos);
  EXPECT_EQ(clients.find("# Server"), std::string::npos);
}

TEST_P(KvServer, ClientsPastMaxClientsAreRefusedWithRedisError) {
  ASSERT_NO_FATAL_FAILURE(start({.max_clients = 3}));
  std::vector<std::unique_ptr<RespClient>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<RespClient>(address()));
    ASSERT_EQ(clients.back()->call({"PING"}), "+PONG\r\n");
  }
  RespClient refused(address());
  bool closed = false;
  EXPECT_EQ(refused.read_until_close(&closed), "-ERR max number of clients reached\r\n");
  EXPECT_TRUE(closed);
  EXPECT_TRUE(testing::wait_until([&] { return server_->stats().refused >= 1; }));
  // Room again once a client leaves.
  clients.pop_back();
  EXPECT_TRUE(testing::wait_until([&] {
    RespClient c(address(), 1);
    return c.call({"PING"}) == "+PONG\r\n";
  }));
}

// Acceptance 3 of the issue: 100 pipelining clients, INCR on 1,000 shared keys and SET/GET/DEL
// on their own keys. Every reply is checked against the request it answers (an own key's GET
// must return that client's last SET, so replies out of order would not match), and at the end
// every shared counter equals the INCRs sent to it.
TEST_P(KvServer, ConsistencyWithOneHundredPipeliningClients) {
  ASSERT_NO_FATAL_FAILURE(start());
  constexpr int kClients = 100;
  constexpr int kSharedKeys = 1000;
  constexpr int kDepth = 16;
  const int rounds = 40 / testing::kSanitizerScale;
  const uint64_t seed = testing::test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::vector<std::vector<int>> incrs(kClients, std::vector<int>(kSharedKeys, 0));
  std::vector<std::string> failures(kClients);
  std::vector<std::thread> threads;
  for (int id = 0; id < kClients; ++id) {
    threads.emplace_back([&, id] {
      std::mt19937_64 rng(seed + id);
      RespClient c(address(), 10);
      std::map<std::string, std::string> mine;  // this client's model of its own keys
      std::vector<int64_t> last_seen(kSharedKeys, 0);
      for (int r = 0; r < rounds && failures[id].empty(); ++r) {
        std::string pipeline;
        std::vector<std::string> expected;  // "" for an INCR: checked separately
        std::vector<int> incr_key;
        for (int i = 0; i < kDepth; ++i) {
          const int op = static_cast<int>(rng() % 4);
          const std::string own = absl::StrCat("c", id, ":", rng() % 8);
          if (op == 0) {
            const int k = static_cast<int>(rng() % kSharedKeys);
            RespClient::append({"INCR", "shared:" + std::to_string(k)}, &pipeline);
            expected.push_back("");
            incr_key.push_back(k);
            ++incrs[id][k];
          } else if (op == 1) {
            const std::string v = std::to_string(r) + "." + std::to_string(i);
            RespClient::append({"SET", own, v}, &pipeline);
            expected.push_back("+OK\r\n");
            mine[own] = v;
          } else if (op == 2) {
            RespClient::append({"GET", own}, &pipeline);
            expected.push_back(mine.count(own) ? bulk(mine[own]) : "$-1\r\n");
          } else {
            RespClient::append({"DEL", own}, &pipeline);
            expected.push_back(mine.erase(own) ? ":1\r\n" : ":0\r\n");
          }
          if (op != 0) incr_key.push_back(-1);
        }
        if (!c.send(pipeline)) {
          failures[id] = "send failed";
          break;
        }
        for (int i = 0; i < kDepth; ++i) {
          const std::string got = c.reply();
          if (incr_key[i] >= 0) {
            // An INCR's value is not known in advance, but this client's own INCRs of one key
            // must see it grow.
            const int64_t v = got.size() > 3 && got[0] == ':' ? std::atoll(got.c_str() + 1) : -1;
            if (v <= last_seen[incr_key[i]]) {
              failures[id] = "round " + std::to_string(r) + " reply " + std::to_string(i) +
                             ": INCR answered " + got;
              break;
            }
            last_seen[incr_key[i]] = v;
          } else if (got != expected[i]) {
            failures[id] = "round " + std::to_string(r) + " reply " + std::to_string(i) +
                           ": expected " + expected[i] + " got " + got;
            break;
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int id = 0; id < kClients; ++id) EXPECT_EQ(failures[id], "") << "client " << id;

  // Every counter, read with one MGET that gathers from both shards.
  RespClient c(address());
  std::vector<std::string> names;
  for (int k = 0; k < kSharedKeys; ++k) names.push_back("shared:" + std::to_string(k));
  std::vector<std::string_view> mget = {"MGET"};
  for (const std::string& n : names) mget.push_back(n);
  std::string request;
  resp::append_command(mget, &request);
  ASSERT_TRUE(c.send(request));
  std::string expected = "*" + std::to_string(kSharedKeys) + "\r\n";
  for (int k = 0; k < kSharedKeys; ++k) {
    int total = 0;
    for (int id = 0; id < kClients; ++id) total += incrs[id][k];
    expected += total == 0 ? "$-1\r\n" : bulk(std::to_string(total));
  }
  EXPECT_EQ(c.reply(), expected);
  EXPECT_GT(service_->channel_stats().sent, 0u) << "no command crossed workers";
}

// --- real clients ------------------------------------------------------------------------------

std::pair<int, std::string> run(const std::string& command) {
  std::string out;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, ""};
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

bool installed(const char* tool) {
  return std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) == 0;
}

TEST_P(KvServer, RedisCliWorks) {
  if (!installed("redis-cli"))
    GTEST_SKIP() << "redis-cli not installed (apt-get install redis-tools)";
  ASSERT_NO_FATAL_FAILURE(start());
  const std::string cli = "timeout 10 redis-cli -p " + std::to_string(server_->port()) + " ";
  EXPECT_EQ(run(cli + "PING"), std::make_pair(0, std::string("PONG\n")));
  EXPECT_EQ(run(cli + "SET greeting 'hello world'"), std::make_pair(0, std::string("OK\n")));
  EXPECT_EQ(run(cli + "GET greeting"), std::make_pair(0, std::string("hello world\n")));
  // The earlier redis-cli processes closed their connections as they exited, but the server
  // learns of a close only when its worker reads the FIN, which may come after the INFO's own
  // connection is counted: ask again until only the asking client is left.
  std::string info;
  for (int attempt = 0; attempt < 50; ++attempt) {
    auto [rc, out] = run(cli + "INFO");
    EXPECT_EQ(rc, 0);
    info = out;
    if (info.find("connected_clients:1\r") != std::string::npos ||
        info.find("connected_clients:1\n") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(info.find("redis_version:"), std::string::npos) << info;
  EXPECT_TRUE(info.find("connected_clients:1\r") != std::string::npos ||
              info.find("connected_clients:1\n") != std::string::npos)
      << info;
}

TEST_P(KvServer, RedisBenchmarkWithAThousandClientsFinishesWithoutErrors) {
  if (!installed("redis-benchmark")) {
    GTEST_SKIP() << "redis-benchmark not installed (apt-get install redis-tools)";
  }
  // 1,000 server sockets here and 1,000 client sockets in redis-benchmark, which inherits our
  // limits: raise the soft fd limit to the hard one.
  rlimit lim{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < 1100) {
    GTEST_SKIP() << "fd hard limit " << lim.rlim_max << " is below the 1,100 this test needs";
  }
  lim.rlim_cur = lim.rlim_max;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lim), 0);
  ASSERT_NO_FATAL_FAILURE(start());
  const int n = 20000 / testing::kSanitizerScale;
  auto [rc, out] = run("timeout 60 redis-benchmark -p " + std::to_string(server_->port()) +
                       " -c 1000 -P 16 -t ping,set,get,incr,mset -q -n " + std::to_string(n));
  EXPECT_EQ(rc, 0) << out;
  for (const char* test :
       {"PING_INLINE: ", "PING_MBULK: ", "SET: ", "GET: ", "INCR: ", "MSET (10 keys): "}) {
    const size_t at = out.rfind(test);
    EXPECT_NE(at, std::string::npos) << test << " missing in " << out;
    if (at != std::string::npos) {
      EXPECT_NE(out.find("requests per second", at), std::string::npos) << out;
    }
  }
  for (const char* bad : {"rror", "ERR", "WARN", "eset"}) {
    EXPECT_EQ(out.find(bad), std::string::npos) << bad << " in " << out;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, KvServer, testing::kAllBackends, testing::backend_test_name);

}  // namespace
}  // namespace shardloop
