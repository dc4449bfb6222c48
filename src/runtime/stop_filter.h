// Holds back generated text that may be the beginning of a stop string, so that a stop string is never
// printed or sent. Used by generate() (strata run/chat) and by the server's scheduler.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace strata::runtime {

class StopFilter {
 public:
  explicit StopFilter(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Adds text; returns the part that is safe to emit. `stopped` becomes true when a stop string appeared
  // (the text before it is returned, the rest dropped). Empty stop strings are ignored.
  std::string push(const std::string& s, bool& stopped);
  // Returns (and forgets) the text still held back.
  std::string flush() { return std::exchange(held_, std::string()); }

 private:
  std::vector<std::string> stops_;
  std::string held_;
};

}  // namespace strata::runtime
