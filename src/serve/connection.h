// Whether the client of a request is still there, for requests answered in one piece (non-streamed): the
// HTTP layer (cpp-httplib 0.11) gives a handler no access to its socket and notices a closed connection only
// when it writes, which a non-streamed response does once, at the end. So the socket is found by its
// addresses (the one open socket of this process whose local and peer addresses are the request's) and
// polled while the answer is computed: end of stream or an error from the peer = the client went away.
#pragma once
#include <string>

namespace strata::serve {

class ConnectionWatch {
 public:
  // Finds the socket of the connection local_addr:local_port <- remote_addr:remote_port. When it cannot be
  // found (another platform, an odd address), gone() is always false.
  ConnectionWatch(const std::string& local_addr, int local_port, const std::string& remote_addr, int remote_port);
  bool valid() const { return fd_ >= 0; }
  // True once the peer has closed (or reset) the connection. Never blocks; never reads request data.
  bool gone() const;

 private:
  int fd_ = -1;
};

}  // namespace strata::serve
