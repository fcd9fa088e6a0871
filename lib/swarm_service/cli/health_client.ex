defmodule SwarmService.CLI.HealthClient do
  @moduledoc """
  Fetches a node's `/health` report over plain HTTP/1.1 on loopback.

  Written on `:gen_tcp` so the command line needs neither `:inets` nor a
  running application, which matters in a release's `eval`.
  """

  @doc "GETs `http://127.0.0.1:port/health`; returns the HTTP status and decoded JSON."
  @spec get(:inet.port_number(), timeout()) :: {:ok, pos_integer(), map()} | {:error, String.t()}
  def get(port, timeout \\ 2_000) do
    request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    opts = [:binary, active: false, packet: :raw]

    with {:ok, socket} <- tcp(:gen_tcp.connect({127, 0, 0, 1}, port, opts, timeout)),
         :ok <- tcp(:gen_tcp.send(socket, request)),
         {:ok, response} <- recv_all(socket, timeout, []) do
      parse(response)
    end
  end

  defp recv_all(socket, timeout, acc) do
    case :gen_tcp.recv(socket, 0, timeout) do
      {:ok, data} ->
        recv_all(socket, timeout, [acc, data])

      {:error, :closed} ->
        {:ok, IO.iodata_to_binary(acc)}

      {:error, reason} ->
        :gen_tcp.close(socket)
        {:error, describe(reason)}
    end
  end

  defp parse(response) do
    with [head, body] <- :binary.split(response, "\r\n\r\n"),
         "HTTP/1." <> <<_, " ", code::binary-size(3), _::binary>> <- head,
         {code, ""} <- Integer.parse(code),
         {:ok, %{} = json} <- InterfaceService.Json.decode(body) do
      {:ok, code, json}
    else
      _ -> {:error, "unexpected response from the health endpoint"}
    end
  end

  defp tcp({:error, reason}), do: {:error, describe(reason)}
  defp tcp(other), do: other

  defp describe(:econnrefused), do: "connection refused"
  defp describe(:timeout), do: "timed out"
  defp describe(reason), do: inspect(reason)
end
