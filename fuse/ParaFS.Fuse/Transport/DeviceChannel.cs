using ParaFS.Fuse.Interop;

namespace ParaFS.Fuse.Transport;

/// <summary>
/// A /dev/fuse descriptor. It is non-blocking: a read that finds the queue empty (EAGAIN) waits in
/// an epoll set of its own that holds the descriptor and an eventfd that <see cref="Shutdown"/>
/// signals, since a thread blocked in read(2) cannot be woken by closing the descriptor (reference
/// 4.3). Every clone's descriptor waits on the one queue of the connection; the descriptor is in
/// its set with EPOLLEXCLUSIVE, so a request wakes one waiting reader, not all of them (with
/// poll(2) each request woke every idle reader, and on two cores the ones that found nothing
/// took the CPU from the one that had it). The eventfd wakes them all. Under load every read
/// finds a request and no wait is made.
/// </summary>
internal sealed unsafe class DeviceChannel : IFuseChannel
{
    /// <summary>The epoll data of the stop eventfd; the device's is 0.</summary>
    private const ulong StopEvent = 1;

    private readonly int _stopFd;
    private readonly bool _ownsStopFd;
    private readonly int _waitSet;
    private int _fd;

    /// <summary>Takes ownership of <paramref name="fd"/>, a mounted /dev/fuse descriptor.</summary>
    public DeviceChannel(int fd)
    {
        _stopFd = Libc.EventFd(0, Libc.EfdCloExec | Libc.EfdNonBlock);
        if (_stopFd < 0)
        {
            throw new IOException($"eventfd failed: {Libc.Describe(Libc.LastErrno)}");
        }

        _ownsStopFd = true;
        _fd = fd;
        MakeNonBlocking(fd);
        _waitSet = CreateWaitSet(fd, _stopFd);
    }

    private DeviceChannel(int fd, int stopFd)
    {
        _fd = fd;
        _stopFd = stopFd;
        _waitSet = CreateWaitSet(fd, stopFd);
    }

    public int Fd => _fd;

    public int Read(Span<byte> buffer)
    {
        fixed (byte* pointer = buffer)
        {
            while (true)
            {
                var n = Libc.Read(_fd, pointer, buffer.Length);
                if (n > 0)
                {
                    return (int)n;
                }

                var errno = n == 0 ? Errno.EIO : Libc.LastErrno;
                switch (errno)
                {
                    // ENOENT: the request was interrupted while being copied out; EINTR: a signal.
                    case Errno.ENOENT:
                    case Errno.EINTR:
                        continue;
                    case Errno.EAGAIN:
                        if (!WaitReadable())
                        {
                            return 0;
                        }

                        continue;
                    case Errno.ENODEV:
                    case Errno.ECONNABORTED:
                        return 0;
                    default:
                        throw new IOException($"read from /dev/fuse failed: {Libc.Describe(errno)} (errno {errno})");
                }
            }
        }
    }

    public int Write(ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload)
    {
        fixed (byte* h = header)
        fixed (byte* p = payload)
        {
            var iov = stackalloc Libc.Iovec[2];
            iov[0] = new Libc.Iovec { Base = h, Length = (nuint)header.Length };
            iov[1] = new Libc.Iovec { Base = p, Length = (nuint)payload.Length };
            while (true)
            {
                var n = Libc.Writev(_fd, iov, payload.IsEmpty ? 1 : 2);
                if (n >= 0)
                {
                    return 0;
                }

                var errno = Libc.LastErrno;
                if (errno != Errno.EINTR)
                {
                    return errno;
                }
            }
        }
    }

    public IFuseChannel Clone()
    {
        var fd = Libc.Open("/dev/fuse", Libc.ORdWr | Libc.OCloExec | Libc.ONonBlock);
        if (fd < 0)
        {
            throw new IOException($"opening /dev/fuse for a cloned descriptor failed: {Libc.Describe(Libc.LastErrno)}");
        }

        var source = (uint)_fd;
        if (Libc.Ioctl(fd, Libc.FuseDevIocClone, &source) < 0)
        {
            var errno = Libc.LastErrno;
            Libc.Close(fd);
            throw new IOException($"FUSE_DEV_IOC_CLONE failed: {Libc.Describe(errno)}");
        }

        try
        {
            return new DeviceChannel(fd, _stopFd);
        }
        catch (IOException)
        {
            Libc.Close(fd);
            throw;
        }
    }

    public void Shutdown()
    {
        var one = 1UL;
        Libc.Write(_stopFd, (byte*)&one, sizeof(ulong));
    }

    public void Dispose()
    {
        var fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            Libc.Close(fd);
            Libc.Close(_waitSet);
            if (_ownsStopFd)
            {
                Libc.Close(_stopFd);
            }
        }
    }

    /// <summary>Sets O_NONBLOCK and FD_CLOEXEC (a descriptor from fusermount3 has neither).</summary>
    private static void MakeNonBlocking(int fd)
    {
        var flags = Libc.Fcntl(fd, Libc.FGetFl, 0);
        if (flags < 0 || Libc.Fcntl(fd, Libc.FSetFl, flags | Libc.ONonBlock) < 0
            || Libc.Fcntl(fd, Libc.FSetFd, Libc.FdCloExec) < 0)
        {
            throw new IOException($"fcntl on /dev/fuse failed: {Libc.Describe(Libc.LastErrno)}");
        }
    }

    /// <summary>The epoll set a reader of <paramref name="fd"/> waits in: the device, exclusively, and the stop eventfd.</summary>
    private static int CreateWaitSet(int fd, int stopFd)
    {
        var set = Libc.EpollCreate1(Libc.EpollCloExec);
        if (set < 0)
        {
            throw new IOException($"epoll_create1 failed: {Libc.Describe(Libc.LastErrno)}");
        }

        var device = new Libc.EpollEvent { Events = Libc.EpollIn | Libc.EpollExclusive, Data = 0 };
        var stop = new Libc.EpollEvent { Events = Libc.EpollIn, Data = StopEvent };
        if (Libc.EpollCtl(set, Libc.EpollCtlAdd, fd, &device) < 0 || Libc.EpollCtl(set, Libc.EpollCtlAdd, stopFd, &stop) < 0)
        {
            var errno = Libc.LastErrno;
            Libc.Close(set);
            throw new IOException($"epoll_ctl on /dev/fuse failed: {Libc.Describe(errno)}");
        }

        return set;
    }

    /// <summary>Waits until the device has a request (or an error) or the stop eventfd fired; false for stop.</summary>
    private bool WaitReadable()
    {
        var events = stackalloc Libc.EpollEvent[2];
        while (true)
        {
            var n = Libc.EpollWait(_waitSet, events, 2, -1);
            if (n < 0)
            {
                var errno = Libc.LastErrno;
                if (errno == Errno.EINTR)
                {
                    continue;
                }

                throw new IOException($"epoll_wait on /dev/fuse failed: {Libc.Describe(errno)}");
            }

            for (var i = 0; i < n; i++)
            {
                if (events[i].Data == StopEvent)
                {
                    return false;
                }
            }

            if (n > 0)
            {
                return true;
            }
        }
    }
}
