#include "net/cpu_steering.h"

#include <linux/filter.h>
#include <sys/socket.h>

#include <cerrno>

#include "runtime/errno_status.h"

namespace shardloop::net {

absl::Status attach_cpu_steering(int fd, const std::vector<int>& worker_cpus) {
  const auto n = static_cast<uint32_t>(worker_cpus.size());
  if (n == 0) return absl::InvalidArgumentError("no workers to steer to");
  std::vector<sock_filter> code;
  // A = the CPU that is processing this packet.
  code.push_back(
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_CPU)));
  // if (A == cpu of worker i) return i;
  for (uint32_t i = 0; i < n; ++i) {
    if (worker_cpus[i] < 0) continue;
    code.push_back(
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(worker_cpus[i]), 0, 1));
    code.push_back(BPF_STMT(BPF_RET | BPF_K, i));
  }
  // Otherwise spread by CPU number.
  code.push_back(BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, n));
  code.push_back(BPF_STMT(BPF_RET | BPF_A, 0));
  sock_fprog prog{static_cast<unsigned short>(code.size()), code.data()};
  if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog)) != 0) {
    return errno_status(errno, "setsockopt(SO_ATTACH_REUSEPORT_CBPF)");
  }
  return absl::OkStatus();
}

void set_incoming_cpu(int fd, int cpu) {
  if (cpu >= 0) ::setsockopt(fd, SOL_SOCKET, SO_INCOMING_CPU, &cpu, sizeof(cpu));
}

}  // namespace shardloop::net
