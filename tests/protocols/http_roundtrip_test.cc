// Property test: random valid requests (random methods, targets, fields, bodies with any bytes,
// Content-Length or chunked framing with random chunking, extensions and trailers), serialized,
// pipelined and delivered in random pieces, parse back to exactly what was generated.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "net/protocols/http_parser.h"
#include "tests/net/test_support.h"
#include "tests/protocols/seed.h"
#include "tests/protocols/transcript.h"

namespace shardloop::http {
namespace {

struct Generated {
  std::string method;
  std::string target;
  int version_minor = 1;
  std::vector<std::pair<std::string, std::string>> headers;  // as parsed (trimmed)
  std::vector<std::pair<std::string, std::string>> trailers;
  std::string body;
  bool chunked = false;
  bool keep_alive = true;
  std::string wire;
};

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}

  size_t uniform(size_t lo, size_t hi) {
    return std::uniform_int_distribution<size_t>(lo, hi)(rng_);
  }
  bool chance(int percent) { return uniform(1, 100) <= static_cast<size_t>(percent); }

  std::string from(std::string_view alphabet, size_t lo, size_t hi) {
    std::string s(uniform(lo, hi), ' ');
    for (char& c : s) c = alphabet[uniform(0, alphabet.size() - 1)];
    return s;
  }

  std::string token(size_t lo, size_t hi) {
    return from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~", lo,
                hi);
  }

  // A field value as the parser reports it: no leading or trailing whitespace.
  std::string value() {
    std::string v = from("abc XYZ 019 \t,;=\"()/:?@[]{}\x80\xfe\xff", 0, 30);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(0, 1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
    return v;
  }

  std::string ows() { return from(" \t", 0, 2); }

  Generated request() {
    Generated g;
    static const char* kMethods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "X-Custom_1"};
    g.method = kMethods[uniform(0, 5)];
    g.target = "/" + from("abcxyz019-._~%!$&'()*+,;=:@/?#", 0, 40);
    g.version_minor = chance(15) ? 0 : 1;
    if (g.version_minor == 1 || chance(50)) g.headers.push_back({"Host", "example.com:8080"});
    const size_t n = uniform(0, 8);
    for (size_t i = 0; i < n; ++i) {
      std::string name = "X-" + token(1, 12);
      g.headers.push_back({name, value()});
    }
    const bool close = chance(20);
    const bool keep_alive_option = chance(30);
    if (close) g.headers.push_back({"Connection", "close"});
    if (keep_alive_option) g.headers.push_back({"Connection", "keep-alive"});
    g.keep_alive = !close && (g.version_minor == 1 || keep_alive_option);

    std::string body_wire;
    if (chance(60)) {
      g.body = from(std::string_view("ab\r\n\0\xff xyz", 10), 0, 200);
      if (g.version_minor == 1 && chance(50)) {
        g.chunked = true;
        g.headers.push_back({"Transfer-Encoding", "chunked"});
        size_t off = 0;
        while (off < g.body.size()) {
          const size_t len = std::min(g.body.size() - off, uniform(1, 64));
          char hex[20];
          std::snprintf(hex, sizeof(hex), chance(50) ? "%zx" : "%zX", len);
          body_wire += std::string(chance(10) ? "00" : "") + hex;
          if (chance(30)) body_wire += ows() + ";" + ows() + token(1, 5) + "=" + token(1, 5);
          body_wire += "\r\n" + g.body.substr(off, len) + "\r\n";
          off += len;
        }
        body_wire += "0\r\n";
        const size_t t = uniform(0, 2);
        for (size_t i = 0; i < t; ++i) {
          g.trailers.push_back({"T-" + token(1, 8), value()});
          body_wire +=
              g.trailers.back().first + ":" + ows() + g.trailers.back().second + ows() + "\r\n";
        }
        body_wire += "\r\n";
      } else {
        g.headers.push_back({"Content-Length", std::to_string(g.body.size())});
        body_wire = g.body;
      }
    }

    g.wire = std::string(chance(5) ? "\r\n" : "") + g.method + " " + g.target + " HTTP/1." +
             std::to_string(g.version_minor) + "\r\n";
    for (const auto& [name, v] : g.headers) g.wire += name + ":" + ows() + v + ows() + "\r\n";
    g.wire += "\r\n" + body_wire;
    return g;
  }

 private:
  std::mt19937_64 rng_;
};

TEST(HttpRoundTrip, RandomPipelinedRequestsInRandomPieces) {
  const uint64_t seed = testing::announced_seed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (rerun with SHARDLOOP_TEST_SEED)");
  Generator gen(seed);
  const int rounds = 400 / testing::kSanitizerScale;
  for (int round = 0; round < rounds; ++round) {
    std::vector<Generated> reqs;
    std::string stream;
    const size_t n = gen.uniform(1, 4);
    for (size_t i = 0; i < n; ++i) {
      reqs.push_back(gen.request());
      stream += reqs.back().wire;
    }
    // Delivered in random pieces; each parse() sees a fresh copy (see transcript.h).
    std::vector<size_t> pieces;
    for (size_t fed = 0; fed < stream.size();) {
      pieces.push_back(gen.uniform(1, 40));
      fed += pieces.back();
    }
    RequestParser parser;
    size_t next = 0;
    testing::Transcript t;
    testing::feed(stream, pieces, &t, [&](std::string_view view) -> long {
      const ParseResult r = parser.parse(view);
      if (r.status == ParseStatus::kNeedMore) return 0;
      EXPECT_EQ(r.status, ParseStatus::kComplete) << r.error_reason;
      if (r.status != ParseStatus::kComplete || next >= reqs.size()) return -1;
      const Generated& g = reqs[next++];
      const Request& q = parser.request();
      EXPECT_EQ(r.consumed, g.wire.size());
      EXPECT_EQ(q.method, g.method);
      EXPECT_EQ(q.target, g.target);
      EXPECT_EQ(q.version_minor, g.version_minor);
      EXPECT_EQ(q.chunked, g.chunked);
      EXPECT_EQ(q.keep_alive, g.keep_alive);
      EXPECT_EQ(r.must_close, !g.keep_alive);
      EXPECT_EQ(q.body, g.body);
      EXPECT_EQ(q.headers.size(), g.headers.size());
      for (size_t i = 0; i < std::min(q.headers.size(), g.headers.size()); ++i) {
        EXPECT_EQ(q.headers[i].name, g.headers[i].first);
        EXPECT_EQ(q.headers[i].value, g.headers[i].second);
      }
      EXPECT_EQ(q.trailers.size(), g.trailers.size());
      for (size_t i = 0; i < std::min(q.trailers.size(), g.trailers.size()); ++i) {
        EXPECT_EQ(q.trailers[i].name, g.trailers[i].first);
        EXPECT_EQ(q.trailers[i].value, g.trailers[i].second);
      }
      return static_cast<long>(r.consumed);
    });
    ASSERT_EQ(next, reqs.size()) << testing::escape(stream);
    ASSERT_FALSE(::testing::Test::HasFailure())
        << "round " << round << ": " << testing::escape(stream);
  }
}

}  // namespace
}  // namespace shardloop::http
