// Subcommand registry: each cmd_*.cpp defines `static const Command kCmd{name, help, setup}`.
// setup() adds the subcommand's options to `sub` and returns the function that runs it (exit code).
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace strata::cli {

using RunFn = std::function<int()>;
using SetupFn = std::function<RunFn(CLI::App& sub)>;

struct Command {
  Command(std::string name, std::string help, SetupFn setup);
};

struct CommandEntry {
  std::string name, help;
  SetupFn setup;
};
std::vector<CommandEntry>& command_registry();

// Default model: $STRATA_MODEL, else ../shared/models/stories260K.gguf beside the project when it exists,
// else "" (the caller then makes a demo model and says so).
std::string default_model_path();

}  // namespace strata::cli
