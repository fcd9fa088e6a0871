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

    SwarmService.Test.Atoms.assert_no_atoms_made(hostile)
  end
end
