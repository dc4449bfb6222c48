// Hand-written machine profiles, for machines we do not have ("how fast would this run on X"), and the
// resolution of `--profile`: a built-in name, a profile JSON file (probe's schema), or nothing (the probed
// profile of this machine when present, else the built-in epyc-zen3-2c with a note).
//
// Hand-written figures are estimates from each machine's microarchitecture and published measurements,
// except where a comment says "measured"; `strata probe` on the machine itself replaces them.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "plan/probe.h"

namespace strata::plan {

struct HardwareProfile {
  std::string name;         // the --profile value
  std::string description;  // one line
  int64_t mem_bytes = 0;    // RAM of the machine: the default --mem when planning for it
  MachineProfile profile;
};

std::span<const HardwareProfile> builtin_profiles();
const HardwareProfile* find_builtin_profile(std::string_view name);
std::string builtin_profile_names();  // "epyc-zen3-2c, m2-air-16g, rpi5-8g"

inline constexpr const char* kDefaultBuiltinProfile = "epyc-zen3-2c";

struct ResolvedProfile {
  MachineProfile profile;
  std::string name;         // the built-in name, or the file's path
  std::string source;       // "built-in", "file", "probed"
  std::string note;         // shown to the user (e.g. "no probed profile: ...")
  int64_t mem_bytes = 0;    // the machine's RAM when known (built-ins), else 0
  bool this_machine = false;  // the profile describes the machine the planner runs on
};

// `arg` empty: the probed profile at default_profile_path() when it exists, else the built-in default
// with a note. Else a built-in name, else a path to a profile JSON. Throws strata::Error naming the
// built-in profiles when `arg` is neither.
ResolvedProfile resolve_profile(const std::string& arg);

}  // namespace strata::plan
