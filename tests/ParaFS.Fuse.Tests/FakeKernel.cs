using ParaFS.Fuse.Protocol;

namespace ParaFS.Fuse.Tests;

/// <summary>A session running over a <see cref="FakeFuseChannel"/>, driven with the kernel's bytes.</summary>
internal sealed class FakeKernel : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private readonly Dictionary<ulong, Written> _early = [];
    private readonly CancellationTokenSource _stop = new();
    private ulong _unique = 100;

    private FakeKernel(IFuseFileSystem fileSystem, FuseMountOptions options)
    {
        Channel = new FakeFuseChannel();
        Session = FuseSession.ForChannel(Channel, options);
        Run = Session.RunAsync(fileSystem, _stop.Token);
    }

    public FakeFuseChannel Channel { get; }

    public FuseSession Session { get; }

    public Task Run { get; }

    /// <summary>Everything a 6.18 kernel could offer, both words.</summary>
    public const uint AllFlags = 0xFFFFFFFF;

    public static FakeKernel Start(IFuseFileSystem fileSystem, FuseMountOptions? options = null, bool init = true)
    {
        var kernel = new FakeKernel(fileSystem, options ?? new FuseMountOptions { MountPoint = "/fake", ReaderThreads = 1 });
        if (init)
        {
            var reply = kernel.Init(AllFlags, AllFlags);
            Assert.Equal(0, reply.Error);
        }

        return kernel;
    }

    public Written Init(uint flags, uint flags2, uint major = 7, uint minor = 45) =>
        Call(FuseOpcode.Init, 0, KernelRequest.Bytes(new FuseInitIn { Major = major, Minor = minor, MaxReadahead = 128 * 1024, Flags = flags, Flags2 = flags2 }));

    public ulong NextUnique() => Interlocked.Add(ref _unique, 2);

    public ulong Send(FuseOpcode opcode, ulong nodeId, params byte[][] body)
    {
        var unique = NextUnique();
        Channel.Send(KernelRequest.Build(opcode, unique, nodeId, body));
        return unique;
    }

    public Written Call(FuseOpcode opcode, ulong nodeId, params byte[][] body) => Reply(Send(opcode, nodeId, body));

    /// <summary>The reply to <paramref name="unique"/>; replies to other requests are kept for later.</summary>
    public Written Reply(ulong unique)
    {
        if (_early.Remove(unique, out var early))
        {
            return early;
        }

        var deadline = DateTime.UtcNow + Timeout;
        while (DateTime.UtcNow < deadline)
        {
            var written = Channel.NextWrite(deadline - DateTime.UtcNow);
            if (written is null)
            {
                break;
            }

            if (written.Unique == unique)
            {
                return written;
            }

            _early[written.Unique] = written;
        }

        throw new TimeoutException($"no reply to request {unique} within {Timeout}");
    }

    /// <summary>Asserts that nothing is written within <paramref name="wait"/> (for requests never answered).</summary>
    public void AssertNothingWritten(TimeSpan wait)
    {
        var written = Channel.NextWrite(wait);
        Assert.True(written is null, $"unexpected write: unique {written?.Unique}, error {written?.Error}");
    }

    public async ValueTask DisposeAsync()
    {
        Channel.EndSession();
        try
        {
            await Run.WaitAsync(Timeout);
        }
        finally
        {
            await Session.DisposeAsync();
            _stop.Dispose();
        }
    }
}
