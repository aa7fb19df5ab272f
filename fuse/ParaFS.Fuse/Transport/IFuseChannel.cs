namespace ParaFS.Fuse.Transport;

/// <summary>
/// One descriptor of a FUSE connection, as the request loop sees it: read one request, write one
/// reply. The device implementation is <see cref="DeviceChannel"/>; tests supply a fake that
/// speaks the same bytes.
/// </summary>
internal interface IFuseChannel : IDisposable
{
    /// <summary>
    /// Blocks until one whole request is in <paramref name="buffer"/> and returns its length, or
    /// returns 0 when the session is over (ENODEV: unmounted or aborted, or <see cref="Shutdown"/>).
    /// Throws <see cref="IOException"/> on any other failure.
    /// </summary>
    int Read(Span<byte> buffer);

    /// <summary>
    /// Writes one reply or notification, <paramref name="header"/> then <paramref name="payload"/>,
    /// in a single writev. Returns 0 or the errno of the failed write.
    /// </summary>
    int Write(ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload);

    /// <summary>A second descriptor on the same connection (FUSE_DEV_IOC_CLONE) with its own processing queue.</summary>
    IFuseChannel Clone();

    /// <summary>Makes every blocked and later <see cref="Read"/> on this channel and its clones return 0.</summary>
    void Shutdown();
}
