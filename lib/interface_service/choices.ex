defmodule InterfaceService.Choices do
  @moduledoc """
  The words a gateway client may use for the API's enumerated options,
  each mapped to its atom: JSON carries strings, and no atom is ever made
  from one. Shared by the MCP/REST tools and the dashboard's socket.
  """

  @doc "Swarm topologies."
  @spec topologies() :: %{String.t() => atom()}
  def topologies,
    do: %{"mesh" => :mesh, "hierarchical" => :hierarchical, "ring" => :ring, "star" => :star}

  @doc "Swarm strategies."
  @spec strategies() :: %{String.t() => atom()}
  def strategies,
    do: %{"balanced" => :balanced, "specialized" => :specialized, "adaptive" => :adaptive}

  @doc "Task priorities."
  @spec priorities() :: %{String.t() => atom()}
  def priorities,
    do: %{"low" => :low, "medium" => :medium, "high" => :high, "critical" => :critical}

  @doc "How a task runs its units."
  @spec task_strategies() :: %{String.t() => atom()}
  def task_strategies,
    do: %{"parallel" => :parallel, "sequential" => :sequential, "adaptive" => :adaptive}
end
