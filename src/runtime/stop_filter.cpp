#include "runtime/stop_filter.h"

#include <algorithm>

namespace strata::runtime {

std::string StopFilter::push(const std::string& s, bool& stopped) {
  held_ += s;
  for (const std::string& st : stops_) {
    if (st.empty()) continue;
    if (size_t p = held_.find(st); p != std::string::npos) {
      stopped = true;
      std::string out = held_.substr(0, p);
      held_.clear();
      return out;
    }
  }
  size_t keep = 0;  // longest suffix of held_ that is a proper prefix of a stop string
  for (const std::string& st : stops_)
    for (size_t k = std::min(st.size() - (st.empty() ? 0 : 1), held_.size()); k > keep; --k)
      if (held_.compare(held_.size() - k, k, st, 0, k) == 0) {
        keep = k;
        break;
      }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

}  // namespace strata::runtime
