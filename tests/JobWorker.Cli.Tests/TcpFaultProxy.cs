using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace JobWorker.Cli.Tests;

/// <summary>
/// A loopback TCP proxy in front of a real server that misbehaves on demand: it resets the first
/// <see cref="ResetFirst"/> connections (RST right after accept, in the middle of the client's TLS handshake),
/// can cut every open connection, can stop listening (connections are refused) and listen again on the same
/// port, as a restarting server would, and can hold back the server's answers once the TLS handshake is done
/// (the request reaches the server, the client waits for the answer). Every socket and task is closed and
/// awaited on dispose.
/// </summary>
internal sealed class TcpFaultProxy : IAsyncDisposable
{
    private readonly IPEndPoint _target;
    private readonly Lock _lock = new();
    private readonly List<Socket> _open = [];
    private readonly List<Task> _tasks = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TcpListener? _listener;
    private Task? _acceptLoop;
    private int _accepted;

    public TcpFaultProxy(Uri target, int resetFirst = 0)
    {
        _target = new IPEndPoint(IPAddress.Parse(target.Host), target.Port);
        ResetFirst = resetFirst;
        Listen(0);
    }

    public int Port { get; private set; }

    public Uri Address => new($"https://127.0.0.1:{Port}");

    /// <summary>How many connections are reset before the proxy starts forwarding.</summary>
    public int ResetFirst { get; set; }

    /// <summary>
    /// Holds everything the server sends after its first TLS flight until <see cref="ReleaseServerData"/>. The
    /// client's second flight (its Finished, then the HTTP/2 request) still goes through: the server handles the
    /// request, and the client is left waiting for the answer.
    /// </summary>
    public bool HoldServerDataAfterHandshake { get; set; }

    /// <summary>Lets held server data through, and everything after it.</summary>
    public void ReleaseServerData() => _released.TrySetResult();

    /// <summary>Connections accepted so far (reset or forwarded).</summary>
    public int Accepted => Volatile.Read(ref _accepted);

    /// <summary>Stops listening (new connections are refused) and cuts every open connection.</summary>
    public async Task GoDownAsync()
    {
        TcpListener? listener;
        Task? loop;
        lock (_lock)
        {
            listener = _listener;
            loop = _acceptLoop;
            _listener = null;
            foreach (var socket in _open)
            {
                Reset(socket);
            }

            _open.Clear();
        }

        listener?.Stop();
        if (loop is not null)
        {
            await loop;
        }
    }

    /// <summary>Listens again on the same port.</summary>
    public void ComeBack() => Listen(Port);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await GoDownAsync();
        Task[] tasks;
        lock (_lock)
        {
            tasks = [.. _tasks];
        }

        await Task.WhenAll(tasks);
        _stop.Dispose();
    }

    private static void Reset(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (ObjectDisposedException)
        {
        }

        socket.Dispose();
    }

    private void Listen(int port)
    {
        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Start();
        Port = ((IPEndPoint)listener.LocalEndpoint).Port;
        lock (_lock)
        {
            _listener = listener;
            _acceptLoop = AcceptLoopAsync(listener);
        }
    }

    private async Task AcceptLoopAsync(TcpListener listener)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                return;
            }

            if (Interlocked.Increment(ref _accepted) <= ResetFirst)
            {
                Reset(client);
                continue;
            }

            lock (_lock)
            {
                _open.Add(client);
                _tasks.Add(ForwardAsync(client));
            }
        }
    }

    private async Task ForwardAsync(Socket client)
    {
        var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        lock (_lock)
        {
            _open.Add(server);
        }

        try
        {
            await server.ConnectAsync(_target, _stop.Token);
            using var clientStream = new NetworkStream(client, ownsSocket: false);
            using var serverStream = new NetworkStream(server, ownsSocket: false);
            // 0: handshake begun; 1: the server's first flight went through; 2: the client answered it (handshake done).
            var phase = new StrongBox<int>();
            var up = PumpAsync(clientStream, serverStream, beforeWrite: () =>
            {
                Interlocked.CompareExchange(ref phase.Value, 2, 1);
                return Task.CompletedTask;
            });
            var down = PumpAsync(serverStream, clientStream, beforeWrite: () =>
                HoldServerDataAfterHandshake && Volatile.Read(ref phase.Value) == 2 ? _released.Task.WaitAsync(_stop.Token) : Task.CompletedTask,
                afterWrite: () => Interlocked.CompareExchange(ref phase.Value, 1, 0));
            // Either direction ending ends both: the peer sees the connection go away, as with a real server.
            await Task.WhenAny(up, down);
            Reset(client);
            Reset(server);
            await Task.WhenAll(up, down);
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException or OperationCanceledException)
        {
        }
        finally
        {
            lock (_lock)
            {
                _open.Remove(client);
                _open.Remove(server);
            }

            Reset(client);
            Reset(server);
        }
    }

    private async Task PumpAsync(Stream from, Stream to, Func<Task> beforeWrite, Action? afterWrite = null)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            int read;
            while ((read = await from.ReadAsync(buffer, _stop.Token)) > 0)
            {
                await beforeWrite();
                await to.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
                afterWrite?.Invoke();
            }
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException or OperationCanceledException)
        {
        }
    }
}
