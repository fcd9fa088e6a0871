Code.require_file("cli_helpers.exs", __DIR__)

defmodule SwarmService.CLI.DistTLSTest do
  @moduledoc false
  # RUV_SWARM_DIST_TLS checks that need no VM of their own: a bad options
  # file is reported by name before anything starts, and a VM that did not
  # boot with the TLS flags refuses rather than run in clear text. (Real
  # TLS nodes: test/swarm_service/cluster/dist_tls_test.exs.)
  use ExUnit.Case, async: false

  import SwarmService.CLITest.Helpers
  alias SwarmService.CLI.DistTLS

  setup do
    dir = Path.join(System.tmp_dir!(), "ruv-swarm-tls-conf-#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    for f <- ~w(node.pem node.key ca.pem), do: File.write!(Path.join(dir, f), "x")

    on_exit(fn ->
      System.delete_env("RUV_SWARM_DIST_TLS")
      File.rm_rf(dir)
    end)

    %{dir: dir}
  end

  defp write(dir, text) do
    path = Path.join(dir, "dist-#{System.unique_integer([:positive])}.conf")
    File.write!(path, text)
    path
  end

  defp good_text(dir, cert \\ "node.pem") do
    files =
      ~s({certfile, "#{dir}/#{cert}"}, {keyfile, "#{dir}/node.key"}, {cacertfile, "#{dir}/ca.pem"})

    """
    [{server, [#{files}, {verify, verify_peer}, {fail_if_no_peer_cert, true}]},
     {client, [#{files}, {verify, verify_peer}]}].
    """
  end

  test "a well-formed file passes; the flags name it", %{dir: dir} do
    path = write(dir, good_text(dir))
    assert DistTLS.validate(path) == :ok
    assert DistTLS.erl_flags(path) == ["-proto_dist", "inet_tls", "-ssl_dist_optfile", path]
  end

  test "errors name the file and the problem", %{dir: dir} do
    missing = Path.join(dir, "nope.conf")
    assert {:error, msg} = DistTLS.validate(missing)
    assert msg =~ "RUV_SWARM_DIST_TLS=#{missing}" and msg =~ "no such file"

    bad = write(dir, "[{server, [}.")
    assert {:error, msg} = DistTLS.validate(bad)
    assert msg =~ bad and msg =~ "not a valid Erlang term file"

    shape = write(dir, "{server, []}.\n")
    assert {:error, msg} = DistTLS.validate(shape)
    assert msg =~ "expected one term, a list"

    wrong = write(dir, "[{sever, []}].\n")
    assert {:error, msg} = DistTLS.validate(wrong)
    assert msg =~ "{server, Options} or {client, Options}"

    no_cert = write(dir, good_text(dir, "gone.pem"))
    assert {:error, msg} = DistTLS.validate(no_cert)
    assert msg =~ "cannot read server certfile #{dir}/gone.pem"

    spaced = Path.join(dir, "a b.conf")
    assert {:error, msg} = DistTLS.validate(spaced)
    assert msg =~ "must not contain spaces"
  end

  test "start refuses a bad file before launching anything", %{dir: dir} do
    with_home(fn home ->
      missing = Path.join(dir, "nope.conf")
      System.put_env("RUV_SWARM_DIST_TLS", missing)
      args = ~w(--port #{free_port()} --health-port #{free_port()})

      for extra <- [["--detached"], []] do
        assert {1, "", err} = cli(["start" | extra ++ args])
        assert err =~ "RUV_SWARM_DIST_TLS=#{missing}: cannot read the file"
      end

      refute File.exists?(Path.join(home, "mcp-server.pid"))
      assert File.ls!(Path.join(home, "logs")) == []
    end)
  end

  # Found on a release: a node launched by `start --detached` inherited the
  # launcher's -proto_dist and got a second one, and net_kernel then
  # silently listened on plain TCP. Such a VM must be refused.
  test "a VM given -proto_dist twice is not taken for a TLS one", %{dir: dir} do
    path = write(dir, good_text(dir))
    flags = Enum.join(DistTLS.erl_flags(path), " ")
    ebin = :code.lib_dir(:swarm_service, :ebin) |> List.to_string()
    check = "IO.inspect(SwarmService.CLI.DistTLS.check_vm(#{inspect(path)}))"
    elixir = System.find_executable("elixir")

    run = fn erl ->
      {out, 0} = System.cmd(elixir, ["--erl", erl, "-pa", ebin, "-e", check])
      String.trim(out)
    end

    assert run.(flags) == ":ok"
    assert run.("-proto_dist inet_tls " <> flags) =~ "not started with distribution over TLS"
  end

  test "a foreground start in a VM booted without the flags says how to start it", %{dir: dir} do
    with_home(fn _home ->
      path = write(dir, good_text(dir))
      System.put_env("RUV_SWARM_DIST_TLS", path)

      assert {1, "", err} = cli(~w(start --port #{free_port()} --health-port #{free_port()}))
      assert err =~ "not started with distribution over TLS"
      assert err =~ ~s(--erl "-proto_dist inet_tls -ssl_dist_optfile #{path}")

      assert DistTLS.check_vm(path) ==
               {:error, String.trim_leading(err, "ruv-swarm: ") |> String.trim()}

      assert DistTLS.check_vm(nil) == :ok
    end)
  end
end
