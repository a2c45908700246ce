// `moemesh config`: the cluster config as the roles would read it (defaults ←
// file ← environment ← --set), checked; or, with --reference, every key's
// default and meaning as the markdown tables docs/MESH.md carries.
#include <iostream>
#include <memory>

#include "commands.h"
#include "services/mesh/cluster_config.h"

namespace moemesh::cli {

namespace {
struct ConfigArgs {
  std::string config, transport = "inproc";
  std::vector<std::string> sets;
  bool reference = false;
};
}  // namespace

void add_config_command(CLI::App& app) {
  auto a = std::make_shared<ConfigArgs>();
  CLI::App* cmd = app.add_subcommand("config", "print the effective cluster config (checked), or the reference of its keys");
  cmd->add_option("--config", a->config, "cluster config (JSON); default: the built-in one");
  cmd->add_option("--set", a->sets, "override a value, e.g. --set dispatch.activations=fp8 (repeatable)");
  cmd->add_option("--transport", a->transport, "defaults' addresses: inproc (moemesh up) or tcp (up --processes)")
      ->check(CLI::IsMember({"inproc", "tcp"}));
  cmd->add_flag("--reference", a->reference, "print every key's default and meaning (markdown)");
  cmd->callback([a] {
    if (a->reference) {
      std::cout << ClusterConfig::reference();
      return;
    }
    const nlohmann::json j = load_cluster_json(a->config, a->sets, a->transport);
    (void)ClusterConfig::from_json(j);  // refuses what the roles would refuse
    std::cout << j.dump(2) << "\n";
  });
}

}  // namespace moemesh::cli
