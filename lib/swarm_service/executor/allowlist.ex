defmodule SwarmService.Executor.Allowlist do
  @moduledoc """
  Which commands (and which arguments) an MCP or REST client may start as
  command agents: the gateway's `:command_allowlist` setting, a list of
  entries (`RUV_SWARM_COMMAND_ALLOWLIST` is the same list, comma-separated).

  An entry is words separated by spaces: the command, then what a client
  may pass as arguments.

  | entry              | the client's argv may be                              |
  | ------------------ | ----------------------------------------------------- |
  | `tr`               | `["tr"]` only: no arguments                           |
  | `tr a-z A-Z`       | `["tr", "a-z", "A-Z"]` only: exactly these arguments  |
  | `grep -F *`        | `["grep", "-F", ...]`: this prefix, then anything     |
  | `cat *`            | `["cat", ...]`: any arguments                         |

  * The command is a path or a bare name. A bare name in an entry, or in
    the client's argv, stands for what it resolves to in the node's `PATH`;
    the command matches when both resolve to the same file (or are the same
    string). A matching base name alone is never enough: `/tmp/x/tr` is
    not `tr`.
  * `*` is only meaningful as the last word. Arguments cannot contain
    spaces or commas, and a literal `*` argument cannot be listed.
  * Executors configured in Elixir code (`{:command, argv, opts}`) are not
    subject to this list: it only governs what clients of the gateway ask.

  Entries that hand a client a general-purpose program with free arguments
  (a shell, `env`, an interpreter...) give the client the node's user
  account; `warnings/1` names them and the gateway logs them at boot.
  """

  @typedoc "A parsed entry."
  @type entry :: %{command: String.t(), args: [String.t()], more: boolean()}

  # Programs that run other programs or arbitrary code from their arguments.
  @risky ~w(sh bash dash zsh ksh mksh fish csh tcsh busybox env sudo doas su nohup setsid
            nice timeout xargs chroot strace ltrace gdb python python2 python3 perl ruby
            node nodejs deno bun php lua luajit tclsh wish awk gawk mawk nawk find elixir
            erl escript iex mix rscript R osascript pwsh powershell docker podman ssh)

  @doc "Parses one entry (see the module doc)."
  @spec parse(String.t()) :: {:ok, entry} | {:error, String.t()}
  def parse(text) when is_binary(text) do
    case String.split(text, " ", trim: true) do
      [] ->
        {:error, "an allow-list entry cannot be empty"}

      ["*" | _] ->
        {:error, "an allow-list entry starts with a command, got #{inspect(text)}"}

      [command | words] ->
        {args, more} =
          case List.last(words) do
            "*" -> {Enum.drop(words, -1), true}
            _ -> {words, false}
          end

        if "*" in args,
          do: {:error, "`*` may only end an allow-list entry, got #{inspect(text)}"},
          else: {:ok, %{command: command, args: args, more: more}}
    end
  end

  def parse(other), do: {:error, "an allow-list entry is a string, got #{inspect(other)}"}

  @doc """
  Whether a client may start `argv` (executable first) under `allowlist`
  (entries as strings or parsed). A bare executable string means no
  arguments.
  """
  @spec allowed?([String.t()] | String.t(), [String.t() | entry]) :: boolean()
  def allowed?(executable, allowlist) when is_binary(executable),
    do: allowed?([executable], allowlist)

  def allowed?([exe | args], allowlist) when is_binary(exe) and is_list(allowlist) do
    resolved = resolve(exe)

    Enum.any?(allowlist, fn entry ->
      case entry(entry) do
        {:ok, e} -> same_command?(exe, resolved, e.command) and args_match?(args, e)
        {:error, _} -> false
      end
    end)
  end

  def allowed?(_argv, _allowlist), do: false

  @doc "Warnings for entries that hand a client free arguments to a risky program."
  @spec warnings([String.t() | entry]) :: [String.t()]
  def warnings(allowlist) do
    for entry <- allowlist,
        {:ok, e} <- [entry(entry)],
        e.more,
        Path.basename(e.command) in @risky do
      "command allow-list entry #{inspect(render(e))} lets clients pass any arguments to " <>
        "#{Path.basename(e.command)}, which can run anything as the node's user"
    end
  end

  defp render(e), do: Enum.join([e.command | e.args] ++ if(e.more, do: ["*"], else: []), " ")

  defp entry(%{command: _, args: _, more: _} = e), do: {:ok, e}
  defp entry(text), do: parse(text)

  defp args_match?(args, %{args: fixed, more: false}), do: args == fixed
  defp args_match?(args, %{args: fixed, more: true}), do: Enum.take(args, length(fixed)) == fixed

  defp same_command?(exe, resolved, command) do
    exe == command or (resolved != nil and resolved == resolve(command))
  end

  defp resolve(name) do
    cond do
      # No file has a NUL in its name (and the PATH lookup refuses one).
      String.contains?(name, <<0>>) -> nil
      String.contains?(name, "/") -> Path.expand(name)
      true -> find_in_path(name)
    end
  end

  defp find_in_path(name) do
    case System.find_executable(name) do
      nil -> nil
      path -> Path.expand(path)
    end
  end
end
