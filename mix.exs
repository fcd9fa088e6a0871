# The cargo compiler must exist before this project compiles, so it lives
# outside lib/ and is loaded here.
Code.require_file("mix/tasks/compile.cargo.ex", __DIR__)

defmodule SwarmService.MixProject do
  use Mix.Project

  def project do
    [
      app: :swarm_service,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      compilers: [:cargo] ++ Mix.compilers(),
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: [],
      releases: [swarm_service: [include_executables_for: [:unix]]]
    ]
  end

  def application do
    [
      mod: {SwarmService.Application, []},
      extra_applications: [:logger, :crypto, :inets, :jiffy, :mochiweb]
    ]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
