// Address: an IPv4 or IPv6 socket address, parsed from "host:port" or "[v6]:port".
//
// Only numeric hosts and "localhost" are accepted: a runtime must not block its worker on DNS.
// Thread-safety: a value type.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shardloop::net {

class Address {
 public:
  Address() = default;
  static absl::StatusOr<Address> parse(absl::string_view host_port);
  static absl::StatusOr<Address> from_host_port(absl::string_view host, uint16_t port);
  static Address from_sockaddr(const sockaddr* sa, socklen_t len);

  int family() const { return storage_.ss_family; }
  uint16_t port() const;
  Address with_port(uint16_t port) const;
  std::string to_string() const;

  const sockaddr* sockaddr_ptr() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t length() const { return len_; }

 private:
  sockaddr_storage storage_{};
  socklen_t len_ = 0;
};

}  // namespace shardloop::net
