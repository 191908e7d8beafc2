// HTTP response writer: exact bytes, framing derived from the response, refusal of anything
// that could split a response.
#include "net/protocols/http_response.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "net/protocols/http_parser.h"

namespace shardloop::http {
namespace {

TEST(HttpResponse, StatusLineHeadersContentLengthBody) {
  std::string out = "previous";
  const std::vector<Header> h = {{"Content-Type", "text/plain"}, {"X-A", "b c"}};
  ASSERT_TRUE(append_response({.status = 200, .headers = h, .body = "hello\n"}, &out));
  EXPECT_EQ(out,
            "previousHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: b c\r\n"
            "Content-Length: 6\r\n\r\nhello\n");
}

TEST(HttpResponse, CloseAndCustomReason) {
  std::string out;
  ASSERT_TRUE(append_response({.status = 299, .reason = "Fine", .close = true}, &out));
  EXPECT_EQ(out, "HTTP/1.1 299 Fine\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

TEST(HttpResponse, HeadAnnouncesTheLengthWithoutTheBody) {
  std::string out;
  ASSERT_TRUE(append_response({.status = 200, .body = "12345", .head = true}, &out));
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
}

TEST(HttpResponse, NoContentLengthWhereNoBodyIsAllowed) {
  for (int status : {100, 101, 204, 304}) {
    std::string out;
    ASSERT_TRUE(append_response({.status = status}, &out)) << status;
    EXPECT_EQ(out.find("Content-Length"), std::string::npos) << out;
    EXPECT_FALSE(append_response({.status = status, .body = "x"}, &out)) << status;
  }
}

TEST(HttpResponse, RefusesWhatCouldSplitTheResponse) {
  const std::vector<std::vector<Header>> bad = {{{"X", "a\r\nSet-Cookie: evil"}},
                                                {{"X", "a\nb"}},
                                                {{"X", std::string_view("a\0b", 3)}},
                                                {{"X Y", "a"}},
                                                {{"X:", "a"}},
                                                {{"", "a"}},
                                                {{"Content-Length", "5"}},
                                                {{"content-length", "5"}}};
  for (const auto& h : bad) {
    std::string out = "keep";
    EXPECT_FALSE(append_response({.status = 200, .headers = h}, &out)) << h[0].name;
    EXPECT_EQ(out, "keep");
  }
  std::string out;
  EXPECT_FALSE(append_response({.status = 200, .reason = "OK\r\nX: y"}, &out));
  EXPECT_FALSE(append_response({.status = 99}, &out));
  EXPECT_FALSE(append_response({.status = 1000}, &out));
  EXPECT_TRUE(out.empty());
}

TEST(HttpResponse, ErrorResponsesCloseTheConnection) {
  for (int status : {400, 413, 414, 431, 501, 505}) {
    std::string out;
    append_error_response(status, &out);
    const std::string phrase(reason_phrase(status));
    EXPECT_EQ(out, "HTTP/1.1 " + std::to_string(status) + " " + phrase +
                       "\r\nContent-Length: " + std::to_string(phrase.size() + 1) +
                       "\r\nConnection: close\r\n\r\n" + phrase + "\n");
  }
}

TEST(HttpResponse, ReasonPhrases) {
  EXPECT_EQ(reason_phrase(404), "Not Found");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(505), "HTTP Version Not Supported");
  EXPECT_EQ(reason_phrase(799), "Unknown");
}

}  // namespace
}  // namespace shardloop::http
