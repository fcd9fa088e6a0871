defmodule SwarmService.DurabilityTest do
  # Durable swarms (storage: :disk, the default) on one node: what was
  # acknowledged is there again after the swarm's Raft server crashes, and
  # after a kill -9 of the whole node. Every acknowledged operation of the
  # run is recorded and each one is checked afterwards.
  use ExUnit.Case, async: false

  import SwarmService.Test.Eventually

  alias SwarmService.{Native, Raft, RuvSwarm}
  alias SwarmService.Raft.Catalogue
  alias SwarmService.Test.{Executors, PeerCluster}

  describe "storage option" do
    test "a swarm is durable by default; :memory is a choice; anything else is refused" do
      {:ok, disk} = RuvSwarm.spawn_swarm(name: "d")
      {:ok, mem} = RuvSwarm.spawn_swarm(name: "m", storage: :memory)
      {:ok, mem2} = RuvSwarm.spawn_swarm(%{storage: "memory"})

      assert Raft.server(disk)
      refute Raft.server(mem)
      refute Raft.server(mem2)

      assert RuvSwarm.spawn_swarm(storage: :tape) ==
               {:error, {:invalid_argument, "storage must be one of: disk, memory"}}

      for id <- [disk, mem, mem2], do: :ok = RuvSwarm.destroy_swarm(id)
      refute Raft.server(disk)
      assert {:error, :swarm_not_found} = RuvSwarm.swarm_status(disk)
    end

    test "consistent: true reads through the log; a bad value is refused" do
      {:ok, id} = RuvSwarm.spawn_swarm(name: "lin")
      {:ok, _} = RuvSwarm.memory_store(id, "k", "v")
      %{commit_index: before} = Raft.status(id)
      assert {:ok, %{value: "v"}} = RuvSwarm.memory_get(id, "k", consistent: true)
      assert {:ok, %{agents: %{total: 0}}} = RuvSwarm.swarm_status(id, consistent: true)
      # Two no-ops went through the log; plain reads add nothing to it.
      assert %{commit_index: after_reads} = Raft.status(id)
      assert after_reads == before + 2
      {:ok, _} = RuvSwarm.swarm_status(id)
      assert Raft.status(id).commit_index == after_reads

      assert {:error, {:invalid_argument, "consistent must be one of: true, false"}} =
               RuvSwarm.task_status(id <> ".task-1", consistent: :maybe)

      :ok = RuvSwarm.destroy_swarm(id)
    end

    test "creating and destroying durable swarms makes no new atoms once their names exist" do
      {:ok, first} = RuvSwarm.spawn_swarm(name: "warm")
      :ok = RuvSwarm.destroy_swarm(first)
      atoms = :erlang.system_info(:atom_count)

      for _ <- 1..20 do
        {:ok, id} = RuvSwarm.spawn_swarm(name: "again")
        :ok = RuvSwarm.destroy_swarm(id)
      end

      assert :erlang.system_info(:atom_count) == atoms
    end

    test "cluster_status reports each durable swarm's Raft members, leader, term and indexes" do
      {:ok, id} = RuvSwarm.spawn_swarm(name: "status")
      {:ok, _} = RuvSwarm.memory_store(id, "k", "v")
      {:ok, %{durable: durable}} = RuvSwarm.cluster_status()
      mine = Enum.find(durable, &(&1.id == id))
      assert %{members: [n], leader: n, term: term, commit_index: ci, last_applied: ci} = mine
      assert n == node() and term >= 1 and ci >= 2
      :ok = RuvSwarm.destroy_swarm(id)
      {:ok, %{durable: durable}} = RuvSwarm.cluster_status()
      refute Enum.any?(durable, &(&1.id == id))
    end

    test "a write not committed in time says so, and may still be applied later" do
      {:ok, id} = RuvSwarm.spawn_swarm(name: "stalled")
      {name, _} = Raft.server(id)
      # A stalled log (a disk that does not answer, say), for longer than
      # the 2 s a write waits.
      :sys.suspend(name)

      try do
        assert {:error, {:not_committed, 2000}} = RuvSwarm.memory_store(id, "late", "v")

        assert RuvSwarm.format_error({:not_committed, 2000}) =~
                 "not written to the swarm's log within 2000 ms"
      after
        :sys.resume(name)
      end

      eventually(fn -> match?({:ok, %{value: "v"}}, RuvSwarm.memory_get(id, "late")) end)
      :ok = RuvSwarm.destroy_swarm(id)
    end

    test "a destroyed durable swarm leaves nothing in the catalogue" do
      {:ok, id} = RuvSwarm.spawn_swarm(name: "gone")
      files = fn -> File.ls!(Path.join(Raft.data_dir(), "swarms")) end
      assert (id <> ".swarm") in files.()
      :ok = RuvSwarm.destroy_swarm(id)
      refute (id <> ".swarm") in files.()
    end
  end

  describe "the catalogue" do
    test "a corrupt or foreign file is reported by name; the good entries still load" do
      dir = Path.join(System.tmp_dir!(), "catalogue-#{System.unique_integer([:positive])}")

      entry = %{
        id: "swarm-00000001-1",
        slot: 3,
        uid: "U1",
        create: %{name: "x"},
        executor: :external
      }

      :ok = Catalogue.write(dir, entry)
      File.write!(Path.join([dir, "swarms", "swarm-00000001-2.swarm"]), "not a term")
      misnamed = Path.join([dir, "swarms", "swarm-00000001-9.swarm"])
      File.write!(misnamed, :erlang.term_to_binary(entry))

      assert {[^entry], broken} = Catalogue.read_all(dir)

      assert Enum.sort(broken) == [
               {Path.join([dir, "swarms", "swarm-00000001-2.swarm"]),
                "not a swarm catalogue entry (corrupt or truncated)"},
               {misnamed, "not a swarm catalogue entry (corrupt or truncated)"}
             ]

      :ok = Catalogue.remove(dir, entry.id)
      assert {[], [_, _]} = Catalogue.read_all(dir)
      File.rm_rf!(dir)
    end
  end

  describe "a crash of the swarm's Raft server" do
    test "rebuilds the same engine from the log" do
      {:ok, id} =
        RuvSwarm.spawn_swarm(
          name: "replay",
          agents: 2,
          executor: {:module, Executors.Upcase, nil}
        )

      for i <- 1..20 do
        {:ok, _} = RuvSwarm.memory_store(id, "k#{i}", "v#{i}", ttl_ms: 600_000)
      end

      tasks = for i <- 1..10, do: elem(RuvSwarm.orchestrate(id, "task #{i}"), 1)
      for t <- tasks, do: assert({:ok, "TASK " <> _} = RuvSwarm.await_task(t, 10_000))
      {:ok, _} = RuvSwarm.share_discovery(id, %{type: "fact", content: "sky is blue"})
      {:ok, before} = Native.swarm_export(id)

      {name, _} = Raft.server(id)
      old = Process.whereis(name)
      Process.exit(old, :kill)

      # Ra's supervisor restarts the server, which replays its log into a
      # fresh engine instance.
      eventually(fn -> is_pid(Process.whereis(name)) and Process.whereis(name) != old end)
      assert :ok = Raft.command(Raft.server(id), :noop)
      {:ok, again} = Native.swarm_export(id)
      assert strip(again) == strip(before)

      for i <- 1..20, do: assert({:ok, %{value: "v" <> _}} = RuvSwarm.memory_get(id, "k#{i}"))
      # And it keeps working.
      {:ok, t} = RuvSwarm.orchestrate(id, "after")
      assert {:ok, "AFTER"} = RuvSwarm.await_task(t, 10_000)
      :ok = RuvSwarm.destroy_swarm(id)
    end
  end

  # The export holds the time it was taken; nothing else may differ.
  defp strip(export), do: Map.drop(export, [:exported_at])

  describe "kill -9 of the node" do
    @describetag :cluster
    @describetag timeout: 120_000

    test "every acknowledged swarm, agent, task, result, memory entry and discovery is there again" do
      [peer] = PeerCluster.start(1)
      rpc = fn f, a -> :erpc.call(peer, RuvSwarm, f, a, 10_000) end

      {:ok, swarm} =
        rpc.(:spawn_swarm, [
          %{name: "kept", agents: 3, executor: {:module, Executors.Upcase, nil}}
        ])

      {:ok, quiet} = rpc.(:spawn_swarm, [%{name: "quiet", topology: :ring}])
      {:ok, lost} = rpc.(:spawn_swarm, [%{name: "ephemeral", storage: :memory}])

      # Work that is running or queued when the node dies: 12 tasks of
      # 500 ms on two agents take 3 s, the node dies after 1.5 s.
      {:ok, slow} =
        rpc.(:spawn_swarm, [%{name: "slow", agents: 2, executor: {:module, Executors.Sleep, nil}}])

      running = for _ <- 1..12, do: elem(rpc.(:orchestrate, [slow, %{input: 500}]), 1)

      history = :ets.new(:history, [:public, :bag])
      stop = :atomics.new(1, [])

      # Four writers until the node dies: memory entries, tasks, discoveries.
      writers =
        for w <- 1..4 do
          Task.async(fn -> write(rpc, swarm, w, history, stop) end)
        end

      Process.sleep(1_500)
      {:ok, %{tasks: %{completed: done_before}}} = rpc.(:swarm_status, [slow])
      assert done_before < 12
      PeerCluster.kill(peer)
      :atomics.put(stop, 1, 1)
      Enum.each(writers, &Task.await(&1, 15_000))

      acked = :ets.tab2list(history)

      assert Enum.count(acked, &match?({:memory, _, _}, &1)) > 20,
             "too few writes to prove anything"

      :ok = PeerCluster.restart(peer)

      {:ok, swarms} = rpc.(:list_swarms, [])
      ids = Enum.map(swarms, & &1.id)
      assert swarm in ids and quiet in ids
      refute lost in ids, "an in-memory swarm does not come back"

      # What the node says it recovered (its log line says the same).
      assert %{swarms: 3, agents: 5, memory_entries: entries} =
               :erpc.call(peer, SwarmService.Raft, :recovered, [])

      assert entries >= Enum.count(acked, &match?({:memory, _, _}, &1))

      {:ok, %{agents: %{total: 3}}} = rpc.(:swarm_status, [swarm])
      {:ok, %{agents: %{total: 2}}} = rpc.(:swarm_status, [slow])

      for task_id <- running do
        assert {:ok, :slept} = rpc.(:await_task, [task_id, 30_000])
      end

      for {:memory, key, value} <- acked do
        assert {:ok, %{value: ^value}} = rpc.(:memory_get, [swarm, key]),
               "lost memory entry #{key}"
      end

      {:ok, found} = rpc.(:recent_discoveries, [swarm, [], 1_000])
      found = MapSet.new(found, & &1.id)

      for {:discovery, id} <- acked do
        assert MapSet.member?(found, id), "lost discovery #{id}"
      end

      # Every acknowledged task completes (work interrupted by the kill runs
      # again on the restarted agents) with its one right result.
      for {:task, task_id, input} <- acked do
        expected = String.upcase(input)

        assert {:ok, ^expected} = rpc.(:await_task, [task_id, 30_000]),
               "task #{task_id} lost or wrong"
      end

      completed_before = for {:completed, task_id} <- acked, do: task_id

      for task_id <- completed_before do
        assert {:ok, %{status: :completed}} = rpc.(:task_status, [task_id])
      end

      PeerCluster.stop([peer])
    end
  end

  describe "a catalogue file that cannot be read" do
    @describetag :cluster
    @describetag timeout: 120_000

    test "its swarm's Raft data is kept and its server name is not given to a new swarm" do
      [peer] = PeerCluster.start(1)
      rpc = fn m, f, a -> :erpc.call(peer, m, f, a, 10_000) end
      {:ok, kept} = rpc.(RuvSwarm, :spawn_swarm, [%{name: "kept"}])
      {:ok, hurt} = rpc.(RuvSwarm, :spawn_swarm, [%{name: "hurt"}])
      {:ok, _} = rpc.(RuvSwarm, :memory_store, [hurt, "k", "v"])
      {hurt_name, _} = rpc.(Raft, :server, [hurt])
      dir = rpc.(Raft, :data_dir, [])
      # Ra saves its table of server names lazily (about every 500 ms): a
      # kill sooner loses the names, and then there is nothing to keep.
      Process.sleep(1_500)
      PeerCluster.kill(peer)

      File.write!(Path.join([dir, "swarms", hurt <> ".swarm"]), "garbage")
      :ok = PeerCluster.restart(peer)

      {:ok, swarms} = rpc.(RuvSwarm, :list_swarms, [])
      assert Enum.map(swarms, & &1.id) == [kept]
      # Ra still knows the server (its log is there to recover by hand) ...
      names = for {n, _} <- rpc.(:ra_directory, :list_registered, [:ruv_swarm]), do: n
      assert hurt_name in names
      # ... and a new swarm is not given its name.
      {:ok, fresh} = rpc.(RuvSwarm, :spawn_swarm, [%{name: "fresh"}])
      assert {name, _} = rpc.(Raft, :server, [fresh])
      assert name != hurt_name
      PeerCluster.stop([peer])
    end
  end

  defp write(rpc, swarm, w, history, stop, i \\ 0) do
    if :atomics.get(stop, 1) == 0 do
      key = "w#{w}-#{i}"
      value = "value #{w}/#{i}"

      try do
        case rpc.(:memory_store, [swarm, key, value]) do
          {:ok, _} -> :ets.insert(history, {:memory, key, value})
          _ -> :ok
        end

        if rem(i, 3) == 0 do
          input = "job #{w}/#{i}"

          case rpc.(:orchestrate, [swarm, input]) do
            {:ok, task_id} ->
              :ets.insert(history, {:task, task_id, input})

              case rpc.(:await_task, [task_id, 2_000]) do
                {:ok, _} -> :ets.insert(history, {:completed, task_id})
                _ -> :ok
              end

            _ ->
              :ok
          end
        end

        if rem(i, 10) == 0 do
          case rpc.(:share_discovery, [swarm, %{type: "note", content: "from #{w}/#{i}"}]) do
            {:ok, id} -> :ets.insert(history, {:discovery, id})
            _ -> :ok
          end
        end

        write(rpc, swarm, w, history, stop, i + 1)
      catch
        # The node is gone: what was not acknowledged is not recorded.
        :error, {:erpc, _} -> :ok
        :exit, _ -> :ok
      end
    else
      :ok
    end
  end
end
