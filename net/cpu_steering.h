// CPU steering for a SO_REUSEPORT listener group: new connections go to the worker pinned on the
// CPU that received them, so a connection's packets, its softirq work and its handler share one
// CPU's caches.
//
// A classic-BPF program attached to the group (SO_ATTACH_REUSEPORT_CBPF) reads the receiving CPU
// (SKF_AD_CPU) and returns the index of the socket whose worker is pinned there; CPUs without a
// worker map to `cpu % group size`. Socket i of the group is the i-th one bound, which
// Server::listen() binds in worker order. Each socket also gets SO_INCOMING_CPU.
//
// Thread-safety: plain functions over fds the caller owns.
#pragma once

#include <vector>

#include "absl/status/status.h"

namespace shardloop::net {

// `worker_cpus[i]` is the CPU worker i is pinned to (-1: not pinned). `fd` is any socket of the
// group (the program applies to the whole group).
absl::Status attach_cpu_steering(int fd, const std::vector<int>& worker_cpus);

// Best effort: tells the kernel which CPU's traffic this socket prefers.
void set_incoming_cpu(int fd, int cpu);

}  // namespace shardloop::net
