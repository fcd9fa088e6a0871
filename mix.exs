# The cargo compiler must exist before this project compiles, so it lives
# outside lib/ and is loaded here.
Code.require_file("mix/tasks/compile.cargo.ex", __DIR__)

# Ra, Cowboy and their dependencies are compiled OTP applications from Debian's
# rabbitmq-server package, linked into _build/erl_libs by `make deps`.
# Putting them on the code path here is what lets `mix test`, `iex -S mix`
# and `mix release` (which copies them in) find them with nothing set.
case Path.wildcard(Path.join(__DIR__, "_build/erl_libs/*/ebin")) do
  [] ->
    IO.puts(:stderr, "warning: Ra is not in _build/erl_libs yet: run `make deps` first")

  ebins ->
    Enum.each(ebins, &Code.prepend_path/1)
end

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
      # :inets only for the tests' HTTP client (:httpc): the node serves HTTP
      # with Cowboy and makes no HTTP requests, and a started :inets (httpc
      # manager, ~10 modules) costs an idle release memory for nothing.
      extra_applications:
        [:logger, :crypto, :jiffy, :ranch, :cowlib, :cowboy, :ra] ++
          if(Mix.env() == :test, do: [:inets], else: [])
    ]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
