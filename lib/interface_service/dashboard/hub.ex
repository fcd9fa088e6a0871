defmodule InterfaceService.Dashboard.Hub do
  @moduledoc """
  One process per gateway that watches the node for the dashboard and
  pushes coalesced deltas to the dashboard sockets.

  While no dashboard is open the hub does nothing (no subscriptions, no
  timers). The first client that joins starts it: it subscribes to every
  swarm of the node (`SwarmService.RuvSwarm.subscribe/1`), finds new swarms twice a second, reads swarms,
  agents, the cluster and memory once a second, and folds every event into
  an `InterfaceService.Dashboard.Model`. Every `@flush_ms` (250 ms), if
  anything changed, it takes one delta from the model, encodes it to JSON
  once and sends the same binary to every client: the cost of an event
  does not grow with the number of clients, and a client never gets more
  than four messages a second however busy the swarms are.

  A joining client gets a snapshot, or, when it says which revision it
  last saw (`since`) and that revision is among the last `@kept_deltas`
  deltas of this hub's `epoch`, only the deltas after it: a reconnect
  resumes without reloading the page. A client whose mailbox holds more
  than `@max_pending` undelivered deltas is dropped (its socket closes and
  its page reconnects); nothing is buffered for it without bound. A delta
  is one binary shared by every mailbox it sits in, so what slow clients
  hold is at most `@max_pending` deltas, not that times the clients.

  When the last client leaves the hub waits `@linger_ms`, then
  unsubscribes and forgets its model.
  """

  use GenServer

  alias InterfaceService.Dashboard.{Model, Overview}
  alias InterfaceService.Json

  @flush_ms 250
  @refresh_ms 500
  @kept_deltas 40
  @max_pending 20
  @max_clients 64
  @linger_ms 30_000
  @describe_per_flush 100
  @full_every 10
  @backfill_tasks 50

  @doc false
  def child_spec(config) do
    %{id: __MODULE__, start: {__MODULE__, :start_link, [config]}}
  end

  @doc """
  Starts the hub of the gateway whose configuration is `config`. Options
  (for tests): `:name` (default `name/1`), `:flush_ms`, `:max_pending`.
  """
  @spec start_link(InterfaceService.Config.t(), keyword()) :: GenServer.on_start()
  def start_link(config, opts \\ []) do
    GenServer.start_link(__MODULE__, {config, opts}, name: Keyword.get(opts, :name, name(config)))
  end

  @doc "The registered name of the hub of the gateway `config`."
  @spec name(InterfaceService.Config.t()) :: atom()
  def name(config), do: Module.concat(config.name, Dashboard)

  @doc """
  Joins the calling process as a client. Answers `{:ok, epoch, how,
  frames}`: frames (JSON binaries) to send first — a snapshot (`how` is
  `:snapshot`), or the deltas after `since` when `since` is `{epoch, rev}`
  of this hub and recent enough (`:resumed`). Afterwards the
  client receives `{:dashboard_delta, epoch, rev, json}` messages.
  """
  @spec join(GenServer.server(), {String.t(), integer()} | nil) ::
          {:ok, String.t(), :snapshot | :resumed, [binary()]} | {:error, String.t()}
  def join(hub, since), do: GenServer.call(hub, {:join, self(), since}, 10_000)

  @doc "Stops sending deltas to the calling process."
  @spec leave(GenServer.server()) :: :ok
  def leave(hub), do: GenServer.cast(hub, {:leave, self()})

  @doc "A read of the hub's model: `fun` gets the model and its answer is returned."
  @spec read(GenServer.server(), (Model.t() -> term())) :: term()
  def read(hub, fun), do: GenServer.call(hub, {:read, fun}, 10_000)

  @doc "Records how the dashboard submitted `task_id` (see `Model.put_definition/3`)."
  @spec define(GenServer.server(), String.t(), map()) :: :ok
  def define(hub, task_id, definition), do: GenServer.cast(hub, {:define, task_id, definition})

  @doc "The most undelivered deltas a client may have before it is dropped."
  @spec max_pending() :: pos_integer()
  def max_pending, do: @max_pending

  # ---- server ------------------------------------------------------------------

  @impl true
  def init({config, opts}) do
    {:ok,
     %{
       config: config,
       flush_ms: Keyword.get(opts, :flush_ms, @flush_ms),
       max_pending: Keyword.get(opts, :max_pending, @max_pending),
       api: config.api,
       clients: %{},
       subscribed: MapSet.new(),
       model: Model.new(),
       epoch: new_epoch(),
       kept: :queue.new(),
       active: false,
       linger: nil,
       flush: nil,
       gateway: nil,
       touched: MapSet.new(),
       refreshes: 0,
       snapshot: nil
     }}
  end

  defp new_epoch, do: Base.url_encode64(:crypto.strong_rand_bytes(6), padding: false)

  @impl true
  def handle_call({:join, pid, since}, _from, state) do
    cond do
      Map.has_key?(state.clients, pid) ->
        {:reply, {:ok, state.epoch, :resumed, []}, state}

      map_size(state.clients) >= @max_clients ->
        {:reply, {:error, "too many dashboards are open on this node (#{@max_clients})"}, state}

      true ->
        state = activate(state)
        ref = Process.monitor(pid)
        state = %{state | clients: Map.put(state.clients, pid, ref)}
        {how, frames, state} = opening_frames(state, since)
        {:reply, {:ok, state.epoch, how, frames}, state}
    end
  end

  def handle_call({:read, fun}, _from, state) do
    {:reply, fun.(state.model), state}
  end

  @impl true
  def handle_cast({:leave, pid}, state), do: {:noreply, drop_client(state, pid)}

  def handle_cast({:define, task_id, definition}, state),
    do: {:noreply, %{state | model: Model.put_definition(state.model, task_id, definition)}}

  @impl true
  def handle_info({:swarm_event, swarm_id, event}, %{active: true} = state) do
    model = Model.apply_event(state.model, swarm_id, event)

    # Agents joining or leaving make the swarm's agents worth reading again
    # (status changes come with the events themselves).
    case event do
      %{type: type} when type in [:agent_joined, :agent_left] ->
        {:noreply, %{state | model: model, touched: MapSet.put(state.touched, swarm_id)}}

      _ ->
        {:noreply, %{state | model: model}}
    end
  end

  def handle_info({:swarm_discovery, _swarm_id, _discovery}, state), do: {:noreply, state}

  def handle_info(:flush, %{active: true} = state) do
    flush = Process.send_after(self(), :flush, state.flush_ms)
    {:noreply, %{flush(state) | flush: flush}}
  end

  def handle_info(:refresh, %{active: true} = state) do
    Process.send_after(self(), :refresh, @refresh_ms)
    {:noreply, refresh(state)}
  end

  def handle_info({:DOWN, _ref, :process, pid, _reason}, state),
    do: {:noreply, drop_client(state, pid)}

  def handle_info(:linger_over, %{clients: clients} = state) when map_size(clients) == 0,
    do: {:noreply, deactivate(state)}

  def handle_info(_other, state), do: {:noreply, state}

  # ---- lifecycle -----------------------------------------------------------------

  defp activate(%{active: true} = state) do
    if state.linger, do: Process.cancel_timer(state.linger)
    %{state | linger: nil}
  end

  defp activate(state) do
    Process.send_after(self(), :refresh, @refresh_ms)
    flush = Process.send_after(self(), :flush, state.flush_ms)
    refresh(%{state | active: true, flush: flush, epoch: new_epoch(), kept: :queue.new()})
  end

  defp deactivate(state) do
    Enum.each(state.subscribed, &safe(fn -> state.api.unsubscribe(&1) end))
    if state.flush, do: Process.cancel_timer(state.flush)

    %{
      state
      | active: false,
        subscribed: MapSet.new(),
        model: Model.new(),
        kept: :queue.new(),
        linger: nil,
        flush: nil,
        gateway: nil,
        snapshot: nil
    }
  end

  defp drop_client(state, pid) do
    case Map.pop(state.clients, pid) do
      {nil, _} ->
        state

      {ref, clients} ->
        Process.demonitor(ref, [:flush])
        state = %{state | clients: clients}

        if map_size(clients) == 0 and state.active,
          do: %{state | linger: Process.send_after(self(), :linger_over, @linger_ms)},
          else: state
    end
  end

  # ---- the picture ---------------------------------------------------------------

  defp refresh(state) do
    now = System.system_time(:millisecond)

    swarms =
      case safe(fn -> state.api.list_swarms() end) do
        {:ok, list} -> list
        _ -> []
      end

    # Only this node's swarms are subscribed to (events come from their
    # home; another node's dashboard shows its own).
    ids = MapSet.new(swarms, & &1.id)
    state = Map.put(state, :subscribed_before, state.subscribed)

    state =
      Enum.reduce(MapSet.difference(state.subscribed, ids), state, fn id, st ->
        %{
          st
          | subscribed: MapSet.delete(st.subscribed, id),
            model: Model.drop_swarm(st.model, id)
        }
      end)

    state =
      Enum.reduce(MapSet.difference(ids, state.subscribed), state, fn id, st ->
        case safe(fn -> st.api.subscribe(id) end) do
          :ok -> backfill(%{st | subscribed: MapSet.put(st.subscribed, id)}, id)
          _ -> st
        end
      end)

    # Every tick finds new and gone swarms; every other tick (once a
    # second) reads every swarm's status, the agents of the swarms whose
    # agents joined or left (all of them every @full_every ticks, 5 s) and
    # the overview.
    full? = rem(state.refreshes, 2) == 0
    all_agents? = rem(state.refreshes, @full_every) == 0

    model =
      Enum.reduce(swarms, state.model, fn s, model ->
        new? = not MapSet.member?(state.subscribed_before, s.id)

        if full? or new? do
          status =
            case safe(fn -> state.api.swarm_status(s.id) end) do
              {:ok, st} -> st
              _ -> %{}
            end

          model = Model.put_swarm(model, swarm_record(s, status))

          if new? or all_agents? or MapSet.member?(state.touched, s.id) do
            case safe(fn -> state.api.list_agents(s.id) end) do
              {:ok, agents} -> Model.put_agents(model, s.id, agents)
              _ -> model
            end
          else
            model
          end
        else
          model
        end
      end)

    {model, gateway} =
      if full? do
        {overview, gateway} = Overview.read(state.config, state.gateway, swarms, model)

        {model
         |> Model.put_overview(overview.info)
         |> Model.put_gateway(now, overview.calls, overview.errors), gateway}
      else
        {model, state.gateway}
      end

    %{
      state
      | model: model,
        gateway: gateway,
        touched: if(full?, do: MapSet.new(), else: state.touched),
        refreshes: state.refreshes + 1
    }
  end

  # Tasks the swarm had before the hub subscribed (events only tell of
  # what comes after): task ids are the swarm's id, ".task-" and a
  # sequence number (see SwarmService.RuvSwarm's "Ids"), and the swarm's
  # counters say how many were submitted; the last @backfill_tasks are read.
  defp backfill(state, swarm_id) do
    submitted =
      case safe(fn -> state.api.swarm_status(swarm_id) end) do
        {:ok, %{counters: %{tasks_submitted: n}}} when is_integer(n) -> n
        _ -> 0
      end

    model =
      Enum.reduce(max(1, submitted - @backfill_tasks + 1)..submitted//1, state.model, fn n, m ->
        case safe(fn -> state.api.task_status(swarm_id <> ".task-" <> Integer.to_string(n)) end) do
          {:ok, %{id: _, swarm_id: _} = t} -> Model.backfill_task(m, t)
          _ -> m
        end
      end)

    %{state | model: model}
  end

  defp swarm_record(s, status) do
    %{
      id: s.id,
      name: s.name,
      topology: s.topology,
      strategy: s.strategy,
      max_agents: s.max_agents,
      created_at: s.created_at,
      agents: Map.get(status, :agents),
      tasks: Map.get(status, :tasks),
      queued: Map.get(status, :queued_units) || Map.get(status, :queued),
      usage: Map.get(status, :usage),
      budget: Map.get(status, :budget),
      storage: Map.get(status, :storage)
    }
  end

  defp flush(state) do
    model = describe_tasks(state)

    if Model.dirty?(model) do
      {delta, model} = Model.take_delta(model, System.system_time(:millisecond))
      json = encode(delta)
      msg = {:dashboard_delta, state.epoch, delta.rev, json}

      clients =
        Enum.reduce(state.clients, state.clients, fn {pid, ref}, acc ->
          if pending(pid) > state.max_pending do
            Process.demonitor(ref, [:flush])
            send(pid, {:dashboard_dropped, "too slow: the dashboard fell behind"})
            Map.delete(acc, pid)
          else
            send(pid, msg)
            acc
          end
        end)

      kept = :queue.in({delta.rev, json}, state.kept)
      kept = if :queue.len(kept) > @kept_deltas, do: :queue.drop(kept), else: kept
      %{state | model: model, kept: kept, clients: clients}
    else
      %{state | model: model}
    end
  end

  defp pending(pid) do
    case Process.info(pid, :message_queue_len) do
      {:message_queue_len, n} -> n
      nil -> 0
    end
  end

  # New tasks get their description from task_status/1, a bounded number
  # per flush.
  defp describe_tasks(state) do
    state.model
    |> Model.tasks_to_describe(@describe_per_flush)
    |> Enum.reduce(state.model, fn id, model ->
      case safe(fn -> state.api.task_status(id) end) do
        {:ok, status} -> Model.put_task_status(model, status)
        _ -> model
      end
    end)
  end

  defp opening_frames(state, {epoch, rev}) when epoch == state.epoch and is_integer(rev) do
    kept = :queue.to_list(state.kept)

    cond do
      rev == state.model.rev ->
        {:resumed, [], state}

      match?([{first, _} | _] when first <= rev + 1, kept) and rev < state.model.rev ->
        {:resumed, for({r, json} <- kept, r > rev, do: json), state}

      true ->
        snapshot(state)
    end
  end

  defp opening_frames(state, _since), do: snapshot(state)

  # Clients joining at the same revision share one encoded snapshot (a
  # page reloaded in a loop costs one encoding per revision, not per load).
  defp snapshot(%{snapshot: {epoch, rev, json}} = state)
       when epoch == state.epoch and rev == state.model.rev,
       do: {:snapshot, [json], state}

  defp snapshot(state) do
    json =
      state.model
      |> Model.snapshot(System.system_time(:millisecond))
      |> Map.put(:epoch, state.epoch)
      |> encode()

    {:snapshot, [json], %{state | snapshot: {state.epoch, state.model.rev, json}}}
  end

  # The model holds only maps, lists, atoms, numbers and text cut to valid
  # UTF-8, which jiffy takes as they are; encode_term! (which checks every
  # value first) is the fallback for anything else.
  defp encode(term) do
    IO.iodata_to_binary(Json.encode!(term))
  rescue
    _ -> IO.iodata_to_binary(Json.encode_term!(term))
  catch
    _, _ -> IO.iodata_to_binary(Json.encode_term!(term))
  end

  defp safe(fun) do
    fun.()
  rescue
    _ -> {:error, :unavailable}
  catch
    :exit, _ -> {:error, :unavailable}
  end
end
