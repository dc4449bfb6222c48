// strata: run large language models on machines whose memory is the limit.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "cli/command.h"
#include "core/error.h"

namespace strata::cli {

std::vector<CommandEntry>& command_registry() {
  static std::vector<CommandEntry> r;
  return r;
}

Command::Command(std::string name, std::string help, SetupFn setup) {
  command_registry().push_back({std::move(name), std::move(help), std::move(setup)});
}

std::string default_model_path() {
  if (const char* e = std::getenv("STRATA_MODEL"); e && *e) return e;
  namespace fs = std::filesystem;
  // Compiled-in location of the shared folder, then the conventional ../shared beside the working dir.
  for (const fs::path& p : {fs::path(STRATA_SHARED_DIR) / "models/stories260K.gguf",
                           fs::path("../shared/models/stories260K.gguf")}) {
    std::error_code ec;
    if (fs::exists(p, ec)) return p.string();
  }
  return "";
}

}  // namespace strata::cli

int main(int argc, char** argv) {
  using namespace strata::cli;
  CLI::App app{"strata: run large language models on machines whose memory is the limit"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "strata 0.1.0");
  std::map<CLI::App*, RunFn> runs;
  auto& reg = command_registry();
  std::sort(reg.begin(), reg.end(), [](auto& a, auto& b) { return a.name < b.name; });
  for (auto& c : reg) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    runs[sub] = c.setup(*sub);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, run] : runs)
      if (sub->parsed()) return run();
  } catch (const strata::Error& e) {
    std::fprintf(stderr, "strata: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "strata: error: out of memory: try a smaller --ctx or a smaller model\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "strata: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
