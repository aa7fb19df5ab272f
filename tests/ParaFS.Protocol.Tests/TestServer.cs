using System.Runtime.CompilerServices;
using ParaFS.Common;
using ParaFS.Protocol.Framing;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Protocol.Tests;

/// <summary>A real RPC server on loopback with a few methods the tests call.</summary>
public sealed class TestServer : IAsyncDisposable
{
    /// <summary>Returns the request message and payload unchanged.</summary>
    public const uint Echo = 9000;

    /// <summary>Waits RpcError.Errno milliseconds (or until the caller goes away), then answers.</summary>
    public const uint Slow = 9001;

    /// <summary>Fails with ENOENT.</summary>
    public const uint Fail = 9002;

    /// <summary>Pushes RpcError.Errno messages to the caller's connection, then answers.</summary>
    public const uint PushBack = 9003;

    /// <summary>Parses its message as a Hello; answers nothing else.</summary>
    public const uint Strict = 9004;

    /// <summary>Throws an unexpected exception.</summary>
    public const uint Crash = 9005;

    /// <summary>Like <see cref="PushBack"/>, but the pushes are sent from a thread-pool thread.</summary>
    public const uint PushFromPool = 9006;

    /// <summary>
    /// Answers with a range of a file as a <see cref="FilePayload"/>: RpcError.Message is
    /// "PATH|OFFSET|LENGTH" (the length may run past the file's end, as after a truncate).
    /// </summary>
    public const uint FromFile = 9007;

    private readonly StrongBox<int> _slowCallsStarted;

    private TestServer(RpcServer server, CapturingLoggerProvider log, StrongBox<int> slowCallsStarted)
    {
        Server = server;
        Log = log;
        _slowCallsStarted = slowCallsStarted;
    }

    /// <summary>How many <see cref="Slow"/> calls have reached their handler.</summary>
    public int SlowCallsStarted => Volatile.Read(ref _slowCallsStarted.Value);

    public RpcServer Server { get; }

    public CapturingLoggerProvider Log { get; }

    public RpcEndpoint Endpoint => Server.Endpoint;

    public static async Task<TestServer> StartAsync(
        string listen = "127.0.0.1:0", string fsId = "fs-test", FrameLimits? limits = null, Func<RpcServerOptions, RpcServerOptions>? configure = null)
    {
        var dispatcher = new RpcDispatcher();
        var slowCallsStarted = new StrongBox<int>();
        dispatcher.Register(Echo, RpcError.Parser, (message, request) =>
            ValueTask.FromResult(new RpcResult(message, request.Payload)));
        dispatcher.Register(Slow, RpcError.Parser, async (message, request) =>
        {
            Interlocked.Increment(ref slowCallsStarted.Value);
            await Task.Delay(message.Errno, request.Aborted);
            return new RpcResult(message);
        });
        dispatcher.Register(Fail, _ => throw new ParaFsException(Errno.ENOENT, "object 7 does not exist on this target"));
        dispatcher.Register(PushBack, RpcError.Parser, async (message, request) =>
        {
            for (var i = 0; i < message.Errno; i++)
            {
                await request.Connection.PushAsync(PushBack, new RpcError { Errno = i, Message = message.Message }, request.Payload);
            }

            return RpcResult.Empty;
        });
        dispatcher.Register(Strict, Hello.Parser, (hello, _) => ValueTask.FromResult(new RpcResult(hello)));
        dispatcher.Register(Crash, _ => throw new InvalidOperationException("the handler broke"));
        dispatcher.Register(PushFromPool, RpcError.Parser, async (message, request) =>
        {
            await Task.Run(async () =>
            {
                for (var i = 0; i < message.Errno; i++)
                {
                    await request.Connection.PushAsync(PushFromPool, new RpcError { Errno = i, Message = message.Message }, request.Payload);
                }
            });
            return RpcResult.Empty;
        });

        dispatcher.Register(FromFile, RpcError.Parser, (message, _) =>
        {
            var parts = message.Message.Split('|');
            var file = File.OpenHandle(parts[0]);
            var payload = new FilePayload(file, long.Parse(parts[1]), int.Parse(parts[2]), file);
            return ValueTask.FromResult(new RpcResult(message, PayloadFile: payload));
        });

        var log = new CapturingLoggerProvider();
        var options = new RpcServerOptions
        {
            Listen = RpcEndpoint.Parse(listen),
            Role = PeerRole.Ost,
            ServerName = "test-ost",
            FileSystemId = fsId,
            FileSystemName = "testfs",
            Limits = limits ?? FrameLimits.Default,
        };
        var server = new RpcServer(configure?.Invoke(options) ?? options, dispatcher, log);
        await server.StartAsync();
        return new TestServer(server, log, slowCallsStarted);
    }

    public RpcClient Client(int connections = 4, string fsId = "", Func<RpcPush, RpcClientConnection, ValueTask>? onPush = null, FrameLimits? limits = null) =>
        new(Endpoint, new RpcClientOptions
        {
            ConnectionsPerServer = connections,
            FileSystemId = fsId,
            PushHandler = onPush,
            Limits = limits ?? FrameLimits.Default,
        });

    public ValueTask DisposeAsync() => Server.DisposeAsync();
}
