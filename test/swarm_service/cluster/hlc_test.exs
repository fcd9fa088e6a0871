defmodule SwarmService.Cluster.HLCTest do
  use ExUnit.Case, async: true
  alias SwarmService.Cluster.HLC

  doctest HLC

  test "stamps of one clock strictly increase, whatever the wall clock does" do
    walls = [100, 100, 100, 99, 50, 101, 101, 200, 150, 150, 201]

    {stamps, _} =
      Enum.map_reduce(walls, HLC.new(), fn wall, clock ->
        stamp = HLC.tick(clock, wall)
        {stamp, stamp}
      end)

    assert stamps == Enum.sort(stamps)
    assert stamps == Enum.uniq(stamps)
    assert hd(stamps) == {100, 0}
    assert List.last(stamps) == {201, 0}
  end

  test "a stamp issued after a merge is larger than the merged stamp" do
    remote = {10_000, 7}
    clock = HLC.merge(HLC.tick(HLC.new(), 500), remote)
    assert HLC.compare(HLC.tick(clock, 600), remote) == :gt
    # ...and merging an older stamp does not move the clock back.
    assert HLC.merge(clock, {1, 0}) == clock
  end

  test "the wall clock wins again once it passes the stamps seen" do
    clock = HLC.merge(HLC.new(), {1_000, 5})
    assert HLC.tick(clock, 1_001) == {1_001, 0}
  end

  test "compare" do
    assert HLC.compare({1, 0}, {1, 0}) == :eq
    assert HLC.compare({1, 1}, {1, 0}) == :gt
    assert HLC.compare({1, 9}, {2, 0}) == :lt
  end
end
