defmodule InterfaceService.AtomsTest do
  # Not async: the atom table is global, so nothing else may run meanwhile.
  use InterfaceService.GatewayCase, async: false

  test "input never creates atoms" do
    gw = start_gateway()
    sid = open_session(gw.url)

    hostile = fn i ->
      unique = "zz_never_an_atom_#{i}_#{System.unique_integer([:positive])}"
      rpc(gw.url, sid, unique, %{unique => unique})
      call_tool(gw.url, sid, "swarm_init", %{topology: unique, strategy: unique})
      call_tool(gw.url, sid, "swarm_status", %{swarm_id: unique, extra: unique})
      http(:post, gw.url <> "/api/mcp/" <> unique, [], encode(%{unique => 1}))
    end

    # One round first, so code loading and the client's own atoms are done.
    hostile.(0)
    before = :erlang.system_info(:atom_count)
    Enum.each(1..200, hostile)

    # 800 hostile requests; a leak would show as hundreds of atoms. A few
    # may come from the VM itself (lazy code loading, logger).
    assert :erlang.system_info(:atom_count) - before < 20
  end
end
