defmodule SwarmService.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    children = [
      InterfaceService
    ]

    Supervisor.start_link(children, strategy: :rest_for_one, name: SwarmService.Supervisor)
  end
end
