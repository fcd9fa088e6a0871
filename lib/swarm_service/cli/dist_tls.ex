defmodule SwarmService.CLI.DistTLS do
  @moduledoc """
  Node-to-node encryption: OTP distribution over TLS, switched on by
  `RUV_SWARM_DIST_TLS=<options file>`.

  The file is the one OTP's `-ssl_dist_optfile` reads (see "Using TLS for
  Erlang Distribution" in the `ssl` user guide): a list of Erlang terms,

      [{server, [{certfile, "/etc/ruv-swarm/node.pem"},
                 {keyfile, "/etc/ruv-swarm/node.key"},
                 {cacertfile, "/etc/ruv-swarm/ca.pem"},
                 {verify, verify_peer},
                 {fail_if_no_peer_cert, true}]},
       {client, [{certfile, "/etc/ruv-swarm/node.pem"},
                 {keyfile, "/etc/ruv-swarm/node.key"},
                 {cacertfile, "/etc/ruv-swarm/ca.pem"},
                 {verify, verify_peer}]}].

  OTP picks the distribution protocol when the VM boots (`-proto_dist
  inet_tls`); `net_kernel` cannot switch a running VM to TLS. So the
  setting acts where VMs are launched:

    * `start --detached` (mix or release) launches the node VM with
      `-proto_dist inet_tls -ssl_dist_optfile FILE` (`elixir --erl ...` from
      a source tree; the release's `env.sh` adds them to
      `ELIXIR_ERL_OPTIONS`, so a release's foreground `start` has them too);
    * a node whose VM lacks the flags, or got `-proto_dist` twice (OTP then
      falls back to plain TCP without a word), refuses to start
      distribution (`check_vm/1`, called by `SwarmService.CLI.Runtime`)
      rather than run in clear text: a foreground `mix swarm.server` must be started as
      `elixir --erl "$(...)" -S mix swarm.server`, see `erl_flags/1`.

  The file is checked (`validate/1`) before any VM is launched: it must be
  readable, hold a list of `{server, Options}` / `{client, Options}` terms,
  and the `certfile`, `keyfile` and `cacertfile` it names must be readable.
  Paths are taken as they are written, relative to the node's working
  directory, so write them absolute.
  """

  @env "RUV_SWARM_DIST_TLS"
  @file_keys [:certfile, :keyfile, :cacertfile]

  @doc "The name of the environment variable: `RUV_SWARM_DIST_TLS`."
  @spec env_var() :: String.t()
  def env_var, do: @env

  @doc """
  The options file named by `RUV_SWARM_DIST_TLS`, expanded to an absolute
  path (a detached node runs in another directory), or `nil` when unset or
  empty.
  """
  @spec configured() :: Path.t() | nil
  def configured do
    case System.get_env(@env) do
      nil -> nil
      "" -> nil
      path -> Path.expand(path)
    end
  end

  @doc """
  The VM flags that turn distribution over TLS on with the options file
  `path`.
  """
  @spec erl_flags(Path.t()) :: [String.t()]
  def erl_flags(path), do: ["-proto_dist", "inet_tls", "-ssl_dist_optfile", path]

  @doc """
  Checks that `path` is a usable options file. Errors name the file and say
  what is wrong with it.
  """
  @spec validate(Path.t()) :: :ok | {:error, String.t()}
  def validate(path) do
    where = "#{@env}=#{path}"

    cond do
      # The flags reach erl through word-split shell variables
      # (ELIXIR_ERL_OPTIONS, elixir --erl): a space would cut the path.
      String.match?(path, ~r/\s/) ->
        {:error, "#{where}: the path must not contain spaces"}

      true ->
        with {:ok, terms} <- consult(path, where),
             :ok <- check_sections(terms, where) do
          check_files(terms, where)
        end
    end
  end

  defp consult(path, where) do
    case :file.consult(String.to_charlist(path)) do
      {:ok, terms} ->
        {:ok, terms}

      {:error, reason} when is_atom(reason) ->
        {:error, "#{where}: cannot read the file: #{:file.format_error(reason)}"}

      {:error, reason} ->
        {:error, "#{where}: not a valid Erlang term file: #{:file.format_error(reason)}"}
    end
  end

  defp check_sections(terms, where) do
    cond do
      # ssl_dist_optfile holds one term, the list of sections.
      not match?([list] when is_list(list) and list != [], terms) ->
        {:error,
         "#{where}: expected one term, a list such as " <>
           "[{server, [...]}, {client, [...]}], ending with a full stop"}

      not Enum.all?(hd(terms), &section?/1) ->
        {:error,
         "#{where}: every entry must be {server, Options} or {client, Options} " <>
           "with Options a list"}

      true ->
        :ok
    end
  end

  defp section?({side, opts}) when side in [:server, :client], do: is_list(opts)
  defp section?(_), do: false

  defp check_files([sections], where) do
    missing =
      for {side, opts} <- sections,
          {key, file} <- opts,
          key in @file_keys,
          not readable?(file),
          do: "#{side} #{key} #{file}"

    case missing do
      [] -> :ok
      _ -> {:error, "#{where}: cannot read #{Enum.join(missing, ", ")}"}
    end
  end

  defp readable?(file) when is_list(file) or is_binary(file) do
    match?({:ok, _}, File.open(file, [:read], fn _ -> :ok end))
  end

  defp readable?(_), do: false

  @doc """
  Whether this VM was started with distribution over TLS and the options
  file `path` (the same file, whatever path names it).
  """
  @spec vm_started_with?(Path.t()) :: boolean()
  def vm_started_with?(path) do
    # Exactly one -proto_dist, as net_kernel reads it: given twice (say,
    # once by the environment and once by us) net_kernel silently falls
    # back to plain TCP.
    with {:ok, [[proto]]} <- :init.get_argument(:proto_dist),
         true <- proto in [~c"inet_tls", ~c"inet6_tls"],
         {:ok, [[file]]} <- :init.get_argument(:ssl_dist_optfile) do
      same_file?(List.to_string(file), path)
    else
      _ -> false
    end
  end

  defp same_file?(a, b) do
    with {:ok, %File.Stat{inode: inode, major_device: dev}} <- File.stat(a),
         {:ok, %File.Stat{inode: ^inode, major_device: ^dev}} <- File.stat(b) do
      true
    else
      _ -> false
    end
  end

  @doc """
  For a node about to start distribution: `:ok` when `RUV_SWARM_DIST_TLS` is
  unset, or when it names a valid file this VM was started with; otherwise
  an error saying how to start the VM.
  """
  @spec check_vm(Path.t() | nil) :: :ok | {:error, String.t()}
  def check_vm(nil), do: :ok

  def check_vm(path) do
    with :ok <- validate(path) do
      if vm_started_with?(path) do
        :ok
      else
        {:error,
         "#{@env} is set but this VM was not started with distribution over TLS " <>
           "(exactly one -proto_dist inet_tls and -ssl_dist_optfile #{path}); " <>
           "start it with --erl \"#{Enum.join(erl_flags(path), " ")}\" " <>
           "(e.g. elixir --erl \"...\" -S mix swarm.server), or use start --detached"}
      end
    end
  end
end
