defmodule SwarmService.Test.Atoms do
  @moduledoc false
  # Whether hostile input creates atoms: `hostile` gets a round number and
  # sends input built from fresh strings. The atom table is global, so the
  # calling test must not run alongside others (async: false).
  import ExUnit.Assertions

  @rounds 200

  def assert_no_atoms_made(hostile) do
    # One round first, so code loading and the client's own atoms are done.
    hostile.(0)
    before = :erlang.system_info(:atom_count)
    Enum.each(1..@rounds, hostile)
    # A leak would show as hundreds of atoms; a few may come from the VM
    # itself (lazy code loading, logger).
    assert :erlang.system_info(:atom_count) - before < 20
  end
end
