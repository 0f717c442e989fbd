// chorus — how many threads the forward pass should use by default: one per physical core
// this process may run on. Hyper-threads of one core share its vector units, so a second
// thread per core adds contention to the int8 kernels rather than throughput.
#pragma once

#include <algorithm>
#include <cstddef>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "chorus/config.hpp"

#if defined(__linux__)
#include <sched.h>
#endif

namespace chorus::inline CHORUS_ABI {

// Physical cores among the CPUs of this process's affinity mask (Linux: from
// /sys/devices/system/cpu/cpuN/topology). Elsewhere, or when the topology cannot be read, the
// number of hardware threads. Never less than 1.
inline std::size_t physical_core_count() {
  const std::size_t hardware = std::max(1u, std::thread::hardware_concurrency());
#if defined(__linux__)
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return hardware;
  std::set<std::pair<long, long>> cores;  // (package, core)
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    long package = -1, core = -1;
    std::ifstream(dir + "physical_package_id") >> package;
    std::ifstream(dir + "core_id") >> core;
    if (package < 0 || core < 0) return std::max<std::size_t>(1, static_cast<std::size_t>(CPU_COUNT(&allowed)));
    cores.emplace(package, core);
  }
  return cores.empty() ? hardware : cores.size();
#else
  return hardware;
#endif
}

}  // namespace chorus::inline CHORUS_ABI
