// idle_clients: opens N TCP connections to a server and holds them idle, to measure what an
// idle connection costs the server. Prints "connected N" once all are up, then holds them for
// --hold seconds (or until stdin closes, with --hold=0), then closes them.
//
//   ./idle_clients --port 7000 --connections 10000 --hold 5
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "examples/common/cli.h"
#include "gflags/gflags.h"
#include "net/address.h"

DEFINE_string(host, "127.0.0.1", "server address");
DEFINE_int32(port, 7000, "server port");
DEFINE_int32(connections, 10000, "connections to open");
DEFINE_double(hold, 5, "seconds to hold them");

int main(int argc, char** argv) {
  shardloop::cli::accept_dashed_flags(argc, argv);
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  auto addr =
      shardloop::net::Address::from_host_port(FLAGS_host, static_cast<uint16_t>(FLAGS_port));
  if (!addr.ok()) {
    std::fprintf(stderr, "idle_clients: %s\n", addr.status().ToString().c_str());
    return 2;
  }
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  std::vector<int> fds;
  for (int i = 0; i < FLAGS_connections; ++i) {
    int fd = ::socket(addr->family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, addr->sockaddr_ptr(), addr->length()) != 0) {
      std::perror("idle_clients: connect");
      return 1;
    }
    fds.push_back(fd);
  }
  std::printf("connected %zu\n", fds.size());
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::duration<double>(FLAGS_hold));
  for (int fd : fds) ::close(fd);
  return 0;
}
