using System.Runtime.InteropServices;
using ParaFS.Fuse.Interop;
using ParaFS.Fuse.Mounting;
using ParaFS.Fuse.Protocol;
using ParaFS.Fuse.Session;
using ParaFS.Fuse.Transport;

namespace ParaFS.Fuse;

/// <summary>Reply writing (reference 1.7) and the INIT negotiation (reference 2).</summary>
public sealed partial class FuseSession
{
    private volatile bool _initialized;

    /// <summary>The capability set granted in the INIT reply (flags | flags2 &lt;&lt; 32); 0 before INIT.</summary>
    internal ulong NegotiatedFlags { get; private set; }

    /// <summary>
    /// INIT, answered on the reader thread: echo only what the kernel offered of what this library
    /// wants (libfuse rejects anything else), with max_write and max_pages for 1 MiB requests.
    /// </summary>
    private void Initialize(Request r)
    {
        var arg = r.ArgOrShorter<FuseInitIn>();
        if (arg.Major < InitFlags.KernelVersion)
        {
            Log.UnsupportedProtocol(_logger, arg.Major, arg.Minor);
            ReplyError(r, Errno.EPROTO);
            return;
        }

        if (arg.Major > InitFlags.KernelVersion)
        {
            // Answer with our major only; the kernel sends a second INIT at 7.x.
            Reply(r, new FuseInitOut { Major = InitFlags.KernelVersion, Minor = InitFlags.KernelMinorVersion });
            return;
        }

        var offered = (ulong)arg.Flags;
        if ((offered & InitFlags.InitExt) != 0)
        {
            offered |= (ulong)arg.Flags2 << 32;
        }

        var wanted = InitFlags.AsyncRead | InitFlags.AtomicOTrunc | InitFlags.BigWrites | InitFlags.AutoInvalData
            | InitFlags.AsyncDio | InitFlags.ParallelDirops | InitFlags.MaxPages | InitFlags.DoReaddirplus
            | InitFlags.ReaddirplusAuto | InitFlags.InitExt;
        if (_options.WritebackCache)
        {
            wanted |= InitFlags.WritebackCache;
        }

        if (_options.Locks)
        {
            wanted |= InitFlags.PosixLocks | InitFlags.FlockLocks;
        }

        if (_options.HandleKillPriv)
        {
            wanted |= InitFlags.HandleKillprivV2;
        }

        var granted = wanted & offered;
        var maxBackground = (ushort)Math.Clamp(_options.MaxBackground, 1, ushort.MaxValue);
        var reply = new FuseInitOut
        {
            Major = InitFlags.KernelVersion,
            Minor = InitFlags.KernelMinorVersion,
            MaxReadahead = arg.MaxReadahead,
            Flags = (uint)granted,
            Flags2 = (uint)(granted >> 32),
            MaxBackground = maxBackground,
            CongestionThreshold = (ushort)Math.Max(1, maxBackground * 3 / 4),
            MaxWrite = (uint)_options.MaxWrite,
            TimeGran = 1,
            MaxPages = (ushort)Math.Min(ushort.MaxValue, _options.MaxWrite / 4096),
        };
        NegotiatedFlags = granted;
        Reply(r, reply);
        _initialized = true;
        _initDone.Set();
        SetReadAhead();
    }

    /// <summary>Raises the mount's read-ahead (<see cref="FuseMountOptions.ReadAheadKb"/>); after INIT, which caps it.</summary>
    private void SetReadAhead()
    {
        if (_options.ReadAheadKb <= 0 || MountPoint is null)
        {
            return;
        }

        try
        {
            var device = KernelMount.FindDevice(MountPoint) ?? throw new IOException("not in /proc/self/mountinfo");
            File.WriteAllText($"/sys/class/bdi/{device}/read_ahead_kb", _options.ReadAheadKb.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.ReadAheadNotSet(_logger, MountPoint, _options.ReadAheadKb, e.Message);
        }
    }

    private void Reply(Request r, ReadOnlySpan<byte> payload) => Send(r.Channel, r.Header.Unique, 0, payload, r.Opcode);

    private void Reply<T>(Request r, in T payload)
        where T : unmanaged => Reply(r, MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in payload)));

    /// <summary>An error reply is the bare header with error = -errno.</summary>
    private void ReplyError(Request r, int errno) => Send(r.Channel, r.Header.Unique, -errno, [], r.Opcode);

    /// <summary>One writev of fuse_out_header + payload; len counts both.</summary>
    private void Send(IFuseChannel channel, ulong unique, int error, ReadOnlySpan<byte> payload, FuseOpcode opcode)
    {
        Span<byte> header = stackalloc byte[16];
        var outHeader = new FuseOutHeader { Len = (uint)(header.Length + payload.Length), Error = error, Unique = unique };
        MemoryMarshal.Write(header, in outHeader);
        var errno = channel.Write(header, payload);

        // ENOENT: the request was interrupted or aborted meanwhile; ENODEV: the session is over.
        if (errno != 0 && errno != Errno.ENOENT && errno != Errno.ENODEV)
        {
            Log.ReplyFailed(_logger, opcode.ToString(), unique, $"{Libc.Describe(errno)} (errno {errno})");
        }
    }
}
