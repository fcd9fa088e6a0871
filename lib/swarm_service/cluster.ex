defmodule SwarmService.Cluster do
  @moduledoc """
  Cluster membership and messaging behind an adapter, shaped like Partisan's
  peer service so a Partisan implementation can be dropped in where hex
  packages are available.

  Two adapters ship:

    * `SwarmService.Cluster.OTP` — OTP distribution (`:net_kernel`
      monitoring, `:erpc`, plain `send/2`), with seed nodes, reconnection
      and partition detection;
    * `SwarmService.Cluster.Local` — a single node, for tests and for nodes
      started without distribution.

  The functions of this module delegate to the configured adapter, and add
  what every adapter shares: the configured member list, quorum, a leader
  and a status report.

  ## Messages

  Processes are addressed as `{registered_name, node}`; messages are plain
  data (no funs, no resource handles). Membership events reach subscribers
  (`subscribe/1`) as

      {:cluster, :member_up, node}
      {:cluster, :member_down, node}

  ## Quorum and leader

  With a configured member list (`:members`, `RUV_SWARM_MEMBERS`), a node
  has quorum when the live members it sees, itself included, contain a
  strict majority of the configured members: of two sides of a partition at
  most one has quorum, so at most one side accepts writes that need it
  (`SwarmService.Cluster.Knowledge`). Without a configured list `quorum?/0`
  is always true: **there is then no partition protection**, every side of a
  partition goes on accepting writes and last-writer-wins settles the
  conflicts when it heals.

  The leader is the live node whose name sorts first (Erlang term order of
  atoms, i.e. byte order of the names) among the live configured members
  (among all live members without a configured list), and `nil` without
  quorum. It is computed from each node's own view, so while membership
  changes two nodes may briefly disagree.

  ## Configuration

  `config :swarm_service, SwarmService.Cluster, [...]`, set from the
  environment by `config/runtime.exs` and validated when the cluster starts
  (a wrong value stops the application with an `ArgumentError` naming the
  option):

  | option | environment | default | meaning |
  |---|---|---|---|
  | `:adapter` | `RUV_SWARM_CLUSTER` (`otp`, `local`) | `:otp` on a distributed node, else `:local` | the adapter (or a module implementing this behaviour) |
  | `:seeds` | `RUV_SWARM_SEEDS` | `[]` | nodes to connect to at boot, retried until connected |
  | `:members` | `RUV_SWARM_MEMBERS` | `[]` | the configured member list quorum is counted against |
  | `:cookie` | `RUV_SWARM_COOKIE` | unchanged | the distribution cookie |
  | `:net_ticktime` | `RUV_SWARM_NET_TICKTIME` | unchanged (OTP: 60) | failure detection, seconds (see `SwarmService.Cluster.OTP`) |
  | `:retry_ms` | — | `200` | first reconnection delay |
  | `:max_retry_ms` | — | `5_000` | the exponential backoff's cap |

  Node names are `name@host` atoms (`RUV_SWARM_SEEDS=a@10.0.0.1,b@10.0.0.2`).
  """

  alias SwarmService.Cluster.{Local, OTP}

  @typedoc "A process registered under `name` on `node`."
  @type dest :: {atom(), node()}
  @typedoc "What subscribers receive."
  @type event :: {:cluster, :member_up | :member_down, node()}
  @type config :: %{
          adapter: module(),
          seeds: [node()],
          members: [node()],
          cookie: atom() | nil,
          net_ticktime: pos_integer() | nil,
          retry_ms: pos_integer(),
          max_retry_ms: pos_integer()
        }

  @doc "Starts the adapter's processes with the validated configuration."
  @callback start_link(config()) :: GenServer.on_start()

  @doc "Live members, this node included, sorted."
  @callback members() :: [node()]

  @doc "Connects this node to `node` (and so to its cluster)."
  @callback join(node()) :: :ok | {:error, term()}

  @doc "Leaves the cluster: disconnects and stops reconnecting until `join/1`."
  @callback leave() :: :ok

  @doc "Delivers membership events to `pid` until it exits."
  @callback subscribe(pid()) :: :ok

  @doc "Sends `message` to the process registered as `name` on `node`."
  @callback send(dest(), term()) :: :ok

  @doc "Sends `message` to the process registered as `name` on every live member."
  @callback broadcast(atom(), term()) :: :ok

  @doc "Calls `apply(module, fun, args)` on `node`."
  @callback call(node(), module(), atom(), list(), timeout()) :: term()

  @options [:adapter, :seeds, :members, :cookie, :net_ticktime, :retry_ms, :max_retry_ms]
  @env_names %{
    adapter: "RUV_SWARM_CLUSTER",
    seeds: "RUV_SWARM_SEEDS",
    members: "RUV_SWARM_MEMBERS",
    cookie: "RUV_SWARM_COOKIE",
    net_ticktime: "RUV_SWARM_NET_TICKTIME"
  }

  # ---- lifecycle ---------------------------------------------------------------

  @doc false
  def child_spec(opts) do
    %{id: __MODULE__, start: {__MODULE__, :start_link, [opts]}, type: :worker}
  end

  @doc """
  Validates the configuration (application environment merged with `opts`),
  and starts the adapter. Raises `ArgumentError` naming a wrong option.
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []) do
    config = config!(opts)
    :persistent_term.put({__MODULE__, :config}, config)
    config.adapter.start_link(config)
  end

  @doc false
  # The validated configuration. Adapter `nil` resolves here, at start,
  # because distribution may be started by an earlier child of the
  # application (SwarmService.CLI.Runtime).
  @spec config!(keyword()) :: config()
  def config!(opts \\ []) do
    env = Application.get_env(:swarm_service, __MODULE__, [])

    unless Keyword.keyword?(env) and Keyword.keyword?(opts),
      do: raise(ArgumentError, "SwarmService.Cluster options must be a keyword list")

    opts = Keyword.merge(env, opts)

    case Enum.find(Keyword.keys(opts), &(&1 not in @options)) do
      nil -> :ok
      key -> raise ArgumentError, "unknown SwarmService.Cluster option #{inspect(key)}"
    end

    retry_ms = int!(:retry_ms, Keyword.get(opts, :retry_ms, 200), 1, 60_000)

    %{
      adapter: adapter!(Keyword.get(opts, :adapter)),
      seeds: nodes!(:seeds, Keyword.get(opts, :seeds, [])),
      members: nodes!(:members, Keyword.get(opts, :members, [])),
      cookie: cookie!(Keyword.get(opts, :cookie)),
      net_ticktime: ticktime!(Keyword.get(opts, :net_ticktime)),
      retry_ms: retry_ms,
      max_retry_ms:
        int!(:max_retry_ms, Keyword.get(opts, :max_retry_ms, 5_000), retry_ms, 3_600_000)
    }
  end

  defp adapter!(nil), do: if(Node.alive?(), do: OTP, else: Local)
  defp adapter!(:otp), do: OTP
  defp adapter!(:local), do: Local

  defp adapter!(module) when is_atom(module) do
    if Code.ensure_loaded?(module) and function_exported?(module, :members, 0) and
         function_exported?(module, :start_link, 1),
       do: module,
       else: bad!(:adapter, module, ":otp, :local or a module implementing SwarmService.Cluster")
  end

  defp adapter!(other), do: bad!(:adapter, other, ":otp or :local")

  defp nodes!(key, list) when is_list(list) do
    if Enum.all?(list, &node_name?/1),
      do: Enum.uniq(list),
      else: bad!(key, list, "a list of node names like name@host")
  end

  defp nodes!(key, other), do: bad!(key, other, "a list of node names like name@host")

  defp node_name?(node) when is_atom(node) and node not in [nil, true, false] do
    case String.split(Atom.to_string(node), "@") do
      [name, host] -> name != "" and host != "" and not String.contains?(name <> host, [" ", ","])
      _ -> false
    end
  end

  defp node_name?(_), do: false

  defp cookie!(nil), do: nil
  defp cookie!(cookie) when is_atom(cookie) and cookie not in [true, false], do: cookie

  # The cookie is operator-supplied configuration read once at start, never
  # request input, so making it an atom cannot exhaust the atom table.
  defp cookie!(cookie) when is_binary(cookie) and cookie != "", do: String.to_atom(cookie)
  defp cookie!(other), do: bad!(:cookie, other, "a non-empty string")

  defp ticktime!(nil), do: nil
  defp ticktime!(value), do: int!(:net_ticktime, value, 1, 86_400)

  defp int!(_key, value, min, max) when is_integer(value) and value >= min and value <= max,
    do: value

  defp int!(key, value, min, max), do: bad!(key, value, "an integer between #{min} and #{max}")

  defp bad!(key, value, expected) do
    source =
      case @env_names do
        %{^key => var} -> " (#{var})"
        _ -> ""
      end

    raise ArgumentError,
          "invalid cluster option #{inspect(key)}#{source}: expected #{expected}, " <>
            "got #{inspect(value, limit: 10, printable_limit: 100)}"
  end

  # ---- the adapter's functions ---------------------------------------------------------

  @doc "The adapter in use (`SwarmService.Cluster.Local` until the cluster starts)."
  @spec adapter() :: module()
  def adapter do
    case :persistent_term.get({__MODULE__, :config}, nil) do
      %{adapter: adapter} -> adapter
      nil -> Local
    end
  end

  @doc """
  Live members, this node included, sorted.

      iex> node() in SwarmService.Cluster.members()
      true
  """
  @spec members() :: [node()]
  def members, do: adapter().members()

  @doc """
  Connects this node to `node` and so to the cluster it is part of.
  `{:error, reason}` if it cannot (the local adapter cannot join anything).
  """
  @spec join(node()) :: :ok | {:error, term()}
  def join(node), do: adapter().join(node)

  @doc "Leaves the cluster; `join/1` comes back."
  @spec leave() :: :ok
  def leave, do: adapter().leave()

  @doc """
  Delivers `t:event/0` messages about members to `pid` (default: the
  caller). A subscriber that exits is dropped; subscribing twice is one
  subscription.
  """
  @spec subscribe(pid()) :: :ok
  def subscribe(pid \\ self()) when is_pid(pid), do: adapter().subscribe(pid)

  @doc """
  Sends `message` (plain data) to the process registered as `name` on
  `node`. Always `:ok`; a message to a node that is not a live member, or to
  a name nobody registered, is dropped (as with `send/2` to a remote name).
  """
  @spec send(dest(), term()) :: :ok
  def send({name, node} = dest, message) when is_atom(name) and is_atom(node),
    do: adapter().send(dest, message)

  @doc "Sends `message` to the process registered as `name` on every live member, this node included."
  @spec broadcast(atom(), term()) :: :ok
  def broadcast(name, message) when is_atom(name), do: adapter().broadcast(name, message)

  @doc """
  `apply(module, fun, args)` on `node`, like `:erpc.call/5` (exceptions in
  the called function are raised in the caller), except that an
  unreachable node returns `{:error, {:nodedown, node}}` and a call that
  does not return within `timeout` ms returns `{:error, :timeout}`. A node
  that is not a live member counts as unreachable (no implicit connect).
  """
  @spec call(node(), module(), atom(), list(), timeout()) :: term()
  def call(node, module, fun, args, timeout \\ 5_000),
    do: adapter().call(node, module, fun, args, timeout)

  # ---- shared by every adapter -----------------------------------------------------

  @doc "The configured member list (`[]` when none is configured)."
  @spec configured_members() :: [node()]
  def configured_members do
    case :persistent_term.get({__MODULE__, :config}, nil) do
      %{members: members} -> members
      nil -> []
    end
  end

  @doc """
  Whether this node sees a strict majority of the configured members (itself
  included) as live. Always true without a configured member list, which
  means no partition protection (see the moduledoc).
  """
  @spec quorum?() :: boolean()
  def quorum? do
    # Checked on every write: without a member list there is nothing to count.
    case configured_members() do
      [] -> true
      configured -> quorum?(members(), configured)
    end
  end

  @doc "The leader of the quorum side (see the moduledoc), `nil` without quorum."
  @spec leader() :: node() | nil
  def leader, do: leader(members(), configured_members())

  @doc """
  A report: this node, the adapter, every live or configured node with
  `up` and `configured` flags, quorum and leader.
  """
  @spec status() :: %{
          self: node(),
          adapter: module(),
          members: [%{node: node(), up: boolean(), configured: boolean()}],
          quorum: boolean(),
          leader: node() | nil
        }
  def status do
    live = members()
    configured = configured_members()

    %{
      self: node(),
      adapter: adapter(),
      members:
        for node <- Enum.sort(Enum.uniq(live ++ configured)) do
          %{node: node, up: node in live, configured: node in configured}
        end,
      quorum: quorum?(live, configured),
      leader: leader(live, configured)
    }
  end

  defp quorum?(_live, []), do: true

  defp quorum?(live, configured),
    do: Enum.count(configured, &(&1 in live)) * 2 > length(configured)

  defp leader(live, configured) do
    if quorum?(live, configured) do
      candidates = if configured == [], do: live, else: Enum.filter(live, &(&1 in configured))
      Enum.min(candidates, fn -> nil end)
    end
  end
end
