defmodule InterfaceService.Transport do
  @moduledoc false
  # :ranch_tcp as Cowboy's transport for gateway connections, with one
  # addition: a budget on the bytes of a request head. Cowboy bounds the
  # request line, each header and the header count, but not their total, and
  # its request_timeout is a deadline, not a rate: many connections each
  # sending headers up to the limits could hold a lot of memory. With
  # `active_n: 1` Cowboy re-arms the socket after every packet through
  # setopts/2, so this module sees each one and compares the bytes received
  # since the head began with the budget. Over it, the client gets 431 and
  # the connection ends.
  #
  # The head's start is kept in the connection process's dictionary:
  # `start_head/0` at connection start, `body_started/0` once a head is
  # complete (InterfaceService.FramingGuard), `next_head/0` after a request,
  # `upgraded/0` when the connection became a WebSocket.

  @head_budget 65_536
  @key :gateway_head_start

  @refusal [
    "HTTP/1.1 431 Request Header Fields Too Large\r\n",
    "connection: close\r\ncontent-type: application/json\r\ncontent-length: 55\r\n\r\n",
    ~s({"error":"request head larger than 65536 bytes in all"})
  ]

  @doc "The most bytes a request head may take."
  def head_budget, do: @head_budget

  def start_head, do: Process.put(@key, 0)
  def body_started, do: Process.put(@key, :body)

  def next_head do
    if Process.get(@key) != :upgraded, do: Process.put(@key, :next)
  end

  def upgraded, do: Process.put(@key, :upgraded)

  def setopts(socket, opts) do
    case Process.get(@key) do
      start when is_integer(start) -> check_head(socket, start)
      :next -> Process.put(@key, received(socket))
      _ -> :ok
    end

    :ranch_tcp.setopts(socket, opts)
  end

  defp check_head(socket, start) do
    if received(socket) - start > @head_budget do
      _ = :ranch_tcp.send(socket, @refusal)
      _ = :ranch_tcp.close(socket)
      exit(:normal)
    end
  end

  defp received(socket) do
    case :inet.getstat(socket, [:recv_oct]) do
      {:ok, [recv_oct: n]} -> n
      _ -> 0
    end
  end

  defdelegate name(), to: :ranch_tcp
  defdelegate secure(), to: :ranch_tcp
  defdelegate messages(), to: :ranch_tcp
  defdelegate send(socket, data), to: :ranch_tcp
  defdelegate sendfile(socket, file), to: :ranch_tcp
  defdelegate sendfile(socket, file, offset, bytes), to: :ranch_tcp
  defdelegate sendfile(socket, file, offset, bytes, opts), to: :ranch_tcp
  defdelegate recv(socket, length, timeout), to: :ranch_tcp
  defdelegate peername(socket), to: :ranch_tcp
  defdelegate sockname(socket), to: :ranch_tcp
  defdelegate getopts(socket, opts), to: :ranch_tcp
  defdelegate getstat(socket), to: :ranch_tcp
  defdelegate getstat(socket, opts), to: :ranch_tcp
  defdelegate controlling_process(socket, pid), to: :ranch_tcp
  defdelegate shutdown(socket, how), to: :ranch_tcp
  defdelegate close(socket), to: :ranch_tcp
end
