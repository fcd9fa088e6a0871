defmodule SwarmService.Coordination do
  @moduledoc false
  # Delivers a coordination message hop by hop along the route the engine
  # computed for the swarm's topology: each agent process that receives it
  # forwards it to the next hops that leave from itself (ring: to its
  # neighbour; star: the hub to every spoke; tree: each coordinator to its
  # children; mesh: the origin to every peer). Agents without a process
  # (external ones) are passed through by whoever delivers to them.
  #
  # The route is written once to an ETS table keyed by {delivery, from}, so
  # a message carries only its own identity, not the whole route: delivery
  # costs O(hops), not O(hops^2), on a ring of 10,000 agents.
  #
  # An agent that dies holding the message never passes it on: the rest of
  # that route would stay in the table, so every route is dropped after
  # @route_ttl_ms, delivered or not.
  use GenServer

  @table __MODULE__
  @route_ttl_ms 300_000

  def start_link(_), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @impl true
  def init(nil) do
    :ets.new(@table, [
      :named_table,
      :public,
      :bag,
      read_concurrency: true,
      write_concurrency: true
    ])

    {:ok, nil}
  end

  @doc """
  Starts delivery of `message` along `hops` ([{from | nil, to, pid | nil}]).
  Hops not yet taken after `ttl_ms` are dropped.
  """
  def start(swarm_id, message, hops, ttl_ms \\ @route_ttl_ms) do
    ref = make_ref()
    :ets.insert(@table, for({from, to, pid} <- hops, do: {{ref, from}, to, pid}))
    Process.send_after(__MODULE__, {:expire, ref}, ttl_ms)
    deliver_from(nil, %{ref: ref, swarm_id: swarm_id, message: message})
  end

  @doc "Called by an agent after it received `delivery`: passes it on."
  def forward(delivery, agent_id), do: deliver_from(agent_id, delivery)

  @impl true
  def handle_info({:expire, ref}, state) do
    :ets.match_delete(@table, {{ref, :_}, :_, :_})
    {:noreply, state}
  end

  defp deliver_from(from, delivery) do
    for {_key, to, pid} <- :ets.take(@table, {delivery.ref, from}) do
      entry = Map.merge(delivery, %{from: from, to: to})

      if is_pid(pid) and Process.alive?(pid) do
        send(pid, {:swarm_coordination, entry})
      else
        # No live process to hand it on: pass it through on its behalf.
        forward(entry, to)
      end
    end

    :ok
  end
end
