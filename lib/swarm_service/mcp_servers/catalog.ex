defmodule SwarmService.McpServers.Catalog do
  @moduledoc false
  # What the gateway and mcp_servers/0 read without asking the actors: one
  # ETS row per server, written by its actor on every state or tool change.
  # The table belongs to SwarmService.McpServers (the supervisor).

  @table :swarm_service_mcp_catalog

  def create, do: :ets.new(@table, [:named_table, :public, :set, read_concurrency: true])

  def put(%{name: name} = view) do
    :ets.insert(@table, {name, view})
    :ok
  catch
    :error, :badarg -> :ok
  end

  def delete(name) do
    :ets.delete(@table, name)
    :ok
  catch
    :error, :badarg -> :ok
  end

  def get(name) do
    case :ets.lookup(@table, name) do
      [{_, view}] -> {:ok, view}
      [] -> :error
    end
  catch
    :error, :badarg -> :error
  end

  def all do
    @table |> :ets.tab2list() |> Enum.map(&elem(&1, 1)) |> Enum.sort_by(& &1.name)
  catch
    :error, :badarg -> []
  end
end
