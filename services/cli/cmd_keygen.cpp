// moemesh keygen: the CURVE keyring of a mesh (actors/curve.h, docs/SECURITY.md),
// one key pair per role, or one more for a role joining later.
#include <filesystem>
#include <iostream>

#include "actors/curve.h"
#include "commands.h"

namespace moemesh::cli {

void add_keygen_command(CLI::App& app) {
  struct Args {
    std::string dir, kind, name;
    std::vector<std::string> hosts;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("keygen", "make the CURVE keys of a mesh: DIR/<kind>/<name>.key (secret, mode 0600) and .pub");
  cmd->add_option("--dir", a->dir, "the keyring folder")->required();
  cmd->add_option("--hosts", a->hosts, "expert host names (default: experts-0 experts-1)")->delimiter(',');
  cmd->add_option("--kind", a->kind, "only one key, of this kind (router, attention, mtp-draft, gateway, expert-host, admin)")
      ->check(CLI::IsMember(curve::kinds()));
  cmd->add_option("--name", a->name, "its name (with --kind; default: the kind's own name)");
  cmd->callback([a] {
    std::vector<std::pair<std::string, std::string>> keys;
    if (!a->kind.empty()) {
      if (a->kind == "expert-host" && a->name.empty()) throw CLI::ValidationError("--name", "an expert host's key needs its name");
      keys.emplace_back(a->kind, a->name.empty() ? a->kind : a->name);
    } else {
      for (const std::string role : {"router", "attention", "mtp-draft", "gateway", "admin"}) keys.emplace_back(role, role);
      for (const auto& h : a->hosts.empty() ? std::vector<std::string>{"experts-0", "experts-1"} : a->hosts) keys.emplace_back("expert-host", h);
    }
    for (const auto& [kind, name] : keys) {
      const auto file = std::filesystem::path(a->dir) / kind / (name + ".key");
      if (std::filesystem::exists(file)) throw std::runtime_error(file.string() + " exists: keygen never overwrites a key");
      curve::Keyring::write(a->dir, kind, name, curve::generate());
      std::cout << file.string() << "\n";
    }
  });
}

}  // namespace moemesh::cli
