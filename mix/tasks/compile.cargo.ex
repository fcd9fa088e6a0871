defmodule Mix.Tasks.Compile.Cargo do
  @shortdoc "Builds the Rust NIF and the command launcher with cargo into priv/native"
  @moduledoc """
  Mix compiler that builds `native/ruv_swarm_nif`, `native/ruv_swarm_launch`
  and `native/ruv_swarm_mcp_client` with cargo (release profile) and copies
  the shared library to `priv/native/ruv_swarm_nif.so`, the launcher (which
  starts every OS command, see `SwarmService.Executor.Launcher`) to
  `priv/native/ruv_swarm_launch` and the MCP client of managed servers (see
  `SwarmService.McpServers`) to `priv/native/ruv_swarm_mcp_client`.

  Hex (and therefore the `rustler` mix package) is not reachable on our
  machines, so this small compiler replaces it. It only invokes cargo when a
  file under `native/` or the workspace manifests is newer than the installed
  library; cargo itself then decides what to rebuild.

  Set `RUV_SWARM_SKIP_CARGO=1` to skip the build (for example in a release
  whose library was built beforehand).
  """
  use Mix.Task.Compiler

  @crate "ruv_swarm_nif"
  @launcher "ruv_swarm_launch"
  @mcp_client "ruv_swarm_mcp_client"

  @impl true
  def run(_args) do
    root = File.cwd!()
    installed = Path.join([root, "priv", "native", "#{@crate}.so"])
    launcher = Path.join([root, "priv", "native", @launcher])
    mcp_client = Path.join([root, "priv", "native", @mcp_client])

    cond do
      System.get_env("RUV_SWARM_SKIP_CARGO") in ["1", "true"] -> {:noop, []}
      Enum.all?([installed, launcher, mcp_client], &up_to_date?(root, &1)) -> {:noop, []}
      true -> build(root, installed, launcher, mcp_client)
    end
  end

  defp up_to_date?(root, installed) do
    case File.stat(installed, time: :posix) do
      {:ok, %{mtime: built}} ->
        sources =
          Path.wildcard(Path.join(root, "native/**/*.{rs,toml}")) ++
            [Path.join(root, "Cargo.toml"), Path.join(root, "Cargo.lock")]

        Enum.all?(sources, fn path ->
          case File.stat(path, time: :posix) do
            {:ok, %{mtime: mtime}} -> mtime <= built
            {:error, _} -> true
          end
        end)

      {:error, _} ->
        false
    end
  end

  defp build(root, installed, launcher, mcp_client) do
    cargo = System.find_executable("cargo") || Path.expand("~/.cargo/bin/cargo")

    unless File.exists?(cargo) do
      Mix.raise("cargo not found: install Rust (https://rustup.rs) or run `make deps`")
    end

    Mix.shell().info(
      "Compiling #{@crate}, #{@launcher} and #{@mcp_client} (cargo build --release)"
    )

    {_, status} =
      System.cmd(
        cargo,
        ["build", "--release", "--quiet", "-p", @crate, "-p", @launcher, "-p", @mcp_client],
        cd: root,
        into: IO.stream(:stdio, :line),
        stderr_to_stdout: true
      )

    if status != 0, do: Mix.raise("cargo build failed with exit status #{status}")

    target_dir = System.get_env("CARGO_TARGET_DIR") || Path.join(root, "target")
    install(Path.join([target_dir, "release", "lib#{@crate}.so"]), installed)
    install(Path.join([target_dir, "release", @launcher]), launcher)
    install(Path.join([target_dir, "release", @mcp_client]), mcp_client)
    {:ok, []}
  end

  # Copy to a temporary name and rename, so a running VM that has the old
  # library mapped (or is starting the old launcher) never sees a
  # half-written file.
  defp install(built, installed) do
    File.mkdir_p!(Path.dirname(installed))
    tmp = installed <> ".tmp"
    File.cp!(built, tmp)
    %{mode: mode} = File.stat!(built)
    File.chmod!(tmp, mode)
    File.rename!(tmp, installed)
  end
end
