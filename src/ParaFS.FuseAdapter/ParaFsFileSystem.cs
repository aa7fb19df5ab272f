using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using ParaFS.Client;
using ParaFS.Common;
using ParaFS.Fuse;
using ParaFS.Protocol.Mds;

namespace ParaFS.FuseAdapter;

/// <summary>
/// Kernel FUSE requests mapped onto the client core. FUSE node ids are ParaFS inode numbers (the
/// root is 1 in both, and the MDS never reuses an inode number, so generation 0 is enough). Errors
/// keep the errno the MDS or OST decided. The virtual extended attribute <c>parafs.layout</c> shows a
/// file's layout and sets a directory's default (or an empty file's layout), as CephFS's
/// <c>ceph.file.layout</c> does.
/// </summary>
public sealed partial class ParaFsFileSystem(ParaFsClient client, TimeSpan? cacheTimeout = null, bool readPriority = false, ILogger? logger = null, TimeSpan? lease = null) : IFuseFileSystem
{
    /// <summary>Paces large writes while they slow small reads down (see <see cref="ReadPriorityThrottle"/>); null when off.</summary>
    private readonly ReadPriorityThrottle? _readPriority = readPriority ? new ReadPriorityThrottle(logger) : null;

    public const string LayoutXattr = "parafs.layout";

    private const int EBADF = 9;
    private const int EACCES = 13;
    private const int EINVAL = 22;
    private const int ERANGE = 34;
    private const int ENODATA = 61;
    private const int EOPNOTSUPP = 95;

    /// <summary>O_TRUNC (asm-generic/fcntl.h): an open that truncates never keeps the cached pages.</summary>
    private const int OTrunc = 0x200;

    /// <summary>
    /// What operations that change the namespace or a file's state pass instead of the kernel's
    /// interrupt: once such a call has gone to the MDS it may have taken effect, and answering
    /// EINTR would make the caller retry it (.NET and glibc restart open on EINTR) and see EEXIST
    /// or ENOENT for its own change. WRITE too (a retried O_APPEND write would append twice, and
    /// any signal, even one the caller's runtime sends itself, interrupts a FUSE request), and
    /// FLUSH (close(2) must not fail with EINTR). Reads, lookups and fsync stay interruptible.
    /// </summary>
    private static CancellationToken NotInterruptible => CancellationToken.None;

    private readonly ConcurrentDictionary<ulong, FileHandle> _handles = new();
    private readonly ConcurrentDictionary<ulong, (ulong Size, long MtimeNs)> _shownToKernel = new();
    private readonly CallerGroups _callers = new();
    private readonly ErrorReport _errors = new(logger);
    private readonly TimeSpan _timeout = cacheTimeout ?? TimeSpan.FromSeconds(1);
    private readonly TimeSpan _lease = lease ?? cacheTimeout ?? TimeSpan.FromSeconds(1);
    private readonly TrustedSet<(ulong Parent, string Name)> _trustedEntries = new(TrustedCapacity);
    private readonly TrustedSet<ulong> _trustedAttrs = new(TrustedCapacity);
    private long _lastDirHandle;

    /// <summary>Set by the mount: tells the kernel to drop what it cached of an inode.</summary>
    public Action<ulong>? InvalidateInode { get; set; }

    /// <summary>Set by the mount: tells the kernel to drop a cached directory entry.</summary>
    public Action<ulong, string>? InvalidateEntry { get; set; }

    /// <summary>Set by the mount: tells the kernel to drop an inode's cached attributes only (its cached data stays).</summary>
    public Action<ulong>? InvalidateAttributes { get; set; }

    /// <summary>At most this many entries, and as many inodes' attributes, are kept by the kernel for the lease (about 100 bytes each here).</summary>
    internal const int TrustedCapacity = 256 * 1024;

    /// <summary>How many entries and inodes the kernel keeps for the lease (tests).</summary>
    internal (int Entries, int Attributes) TrustedCount => (_trustedEntries.Count, _trustedAttrs.Count);

    /// <summary>
    /// Turns the client's callbacks into kernel invalidations (<see cref="InvalidateEntry"/>,
    /// <see cref="InvalidateInode"/>, <see cref="InvalidateAttributes"/>), ending the leases they
    /// concern; a lost MDS connection ends every lease.
    /// </summary>
    public void FollowCallbacks()
    {
        client.EntryInvalidated += EntryChanged;
        client.AttrInvalidated += AttrChanged;
        client.CachesMayBeStale += CachesMayBeStale;
    }

    /// <summary>The MDS said the entry changed: the kernel drops it.</summary>
    public void EntryChanged(ulong parent, string name)
    {
        _trustedEntries.Remove((parent, name));
        InvalidateEntry?.Invoke(parent, name);
    }

    /// <summary>The MDS said the inode's attributes changed: the kernel drops them and its cached data.</summary>
    public void AttrChanged(ulong ino)
    {
        _trustedAttrs.Remove(ino);
        InvalidateInode?.Invoke(ino);
    }

    /// <summary>A connection to the MDS ended, and callbacks with it: the kernel drops every entry and attribute it was told to keep for the lease.</summary>
    public void CachesMayBeStale()
    {
        foreach (var (parent, name) in _trustedEntries.TakeAll())
        {
            InvalidateEntry?.Invoke(parent, name);
        }

        foreach (var ino in _trustedAttrs.TakeAll())
        {
            InvalidateAttributes?.Invoke(ino);
        }
    }

    public async ValueTask<FuseEntry> LookupAsync(FuseContext context, ulong parent, string name)
    {
        var version = client.EntryVersion(parent, name);
        try
        {
            var attrVersions = client.AttrVersions();
            var reply = await client.LookupAsync(_callers.For(context), parent, name, context.Cancellation).ConfigureAwait(false);
            return Trusted(reply.Attr, parent, name, version, attrVersions);
        }
        catch (ParaFsException e)
        {
            if (e.Errno == Errno.ENOENT && Absent(parent, name, version) is { } absent)
            {
                return absent;
            }

            throw Translate(e);
        }
    }

    /// <summary>
    /// A name the MDS says is not there, for the kernel to keep as absent for the lease (node id
    /// 0): a create, link or rename onto it anywhere calls back, as for an entry that is there.
    /// Null (the caller answers ENOENT, which the kernel does not keep) when leases are off, the
    /// table is full, or something revoked the entry while the lookup was on its way: an absence
    /// kept for even the short timeout would hide another client's new file from an open that
    /// follows its close.
    /// </summary>
    private FuseEntry? Absent(ulong parent, string name, long entryVersion) =>
        EntryLease(parent, name, entryVersion) is var lease && lease > _timeout
            ? new FuseEntry(0, 0, default, lease, TimeSpan.Zero)
            : null;

    /// <summary>
    /// Node ids are inode numbers, so nothing is counted per lookup. A FORGET means the kernel has
    /// evicted the inode, its cached pages with it: what it was shown of the file is dropped too
    /// (without that, the table grows by every file the mount ever looked at). The next open then
    /// keeps no cache, which is always safe.
    /// </summary>
    public void Forget(ulong nodeId, ulong lookups)
    {
        _shownToKernel.TryRemove(nodeId, out _);
        _trustedAttrs.Remove(nodeId);
    }

    /// <summary>How many files' sizes and mtimes the mount remembers as shown to the kernel (for tests).</summary>
    internal int ShownToKernelCount => _shownToKernel.Count;

    public async ValueTask<(FuseAttr Attr, TimeSpan Timeout)> GetAttrAsync(FuseContext context, ulong nodeId, ulong? fileHandle)
    {
        try
        {
            var versions = client.AttrVersions();
            var reply = await client.GetAttrAsync(nodeId, cancellationToken: context.Cancellation).ConfigureAwait(false);
            return (Shown(reply.Attr), AttrTimeout(reply.Attr.Ino, versions));
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }

    public async ValueTask<(FuseAttr Attr, TimeSpan Timeout)> SetAttrAsync(FuseContext context, ulong nodeId, FuseSetAttr changes)
    {
        // FATTR_* (linux/fuse.h) to the MDS's SetAttrField bits.
        var valid = changes.Valid;
        var fields = SetAttrField.None;
        fields |= (valid & 1) != 0 ? SetAttrField.Mode : 0;
        fields |= (valid & 2) != 0 ? SetAttrField.Uid : 0;
        fields |= (valid & 4) != 0 ? SetAttrField.Gid : 0;
        fields |= (valid & 8) != 0 ? SetAttrField.Size : 0;
        fields |= (valid & 16) != 0 && (valid & 128) == 0 ? SetAttrField.Atime : 0;
        fields |= (valid & 32) != 0 && (valid & 256) == 0 ? SetAttrField.Mtime : 0;
        fields |= (valid & 128) != 0 ? SetAttrField.AtimeNow : 0;
        fields |= (valid & 256) != 0 ? SetAttrField.MtimeNow : 0;
        fields |= (valid & 1024) != 0 ? SetAttrField.Ctime : 0;
        var request = new SetAttrRequest
        {
            Ino = nodeId,
            Valid = (uint)fields,
            Mode = changes.Mode & 0xFFF,
            Uid = changes.Uid,
            Gid = changes.Gid,
            Size = changes.Size,
            AtimeNs = changes.AtimeNs,
            MtimeNs = changes.MtimeNs,
        };
        var handle = changes.FileHandle is { } fh ? _handles.GetValueOrDefault(fh) : null;
        try
        {
            var versions = client.AttrVersions();
            var reply = await client.SetAttrAsync(_callers.For(context), request, handle, NotInterruptible).ConfigureAwait(false);
            return (Shown(reply.Attr), AttrTimeout(reply.Attr.Ino, versions));
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }

    public async ValueTask<string> ReadLinkAsync(FuseContext context, ulong nodeId)
    {
        try
        {
            return await client.ReadlinkAsync(nodeId, context.Cancellation).ConfigureAwait(false);
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }

    public ValueTask<FuseEntry> MknodAsync(FuseContext context, ulong parent, string name, uint mode, uint rdev, uint umask) =>
        MakeAsync(context, parent, name, Conversions.TypeOf(mode), mode & ~umask, rdev, "");

    public ValueTask<FuseEntry> MkdirAsync(FuseContext context, ulong parent, string name, uint mode, uint umask) =>
        MakeAsync(context, parent, name, FileType.Directory, mode & ~umask, 0, "");

    public ValueTask<FuseEntry> SymlinkAsync(FuseContext context, ulong parent, string name, string target) =>
        MakeAsync(context, parent, name, FileType.Symlink, 0x1FF, 0, target);

    public ValueTask UnlinkAsync(FuseContext context, ulong parent, string name) => RemoveAsync(context, parent, name, directory: false);

    public ValueTask RmdirAsync(FuseContext context, ulong parent, string name) => RemoveAsync(context, parent, name, directory: true);

    public async ValueTask RenameAsync(FuseContext context, ulong parent, string name, ulong newParent, string newName, uint flags)
    {
        try
        {
            await client.RenameAsync(_callers.For(context), parent, name, newParent, newName, flags, NotInterruptible).ConfigureAwait(false);
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }

    public async ValueTask<FuseEntry> LinkAsync(FuseContext context, ulong nodeId, ulong newParent, string newName)
    {
        try
        {
            var version = client.EntryVersion(newParent, newName);
            var attrVersions = client.AttrVersions();
            var reply = await client.LinkAsync(_callers.For(context), nodeId, newParent, newName, NotInterruptible).ConfigureAwait(false);
            return Trusted(reply.Attr, newParent, newName, version, attrVersions);
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }

    public async ValueTask<FuseOpen> OpenAsync(FuseContext context, ulong nodeId, int flags)
    {
        try
        {
            var handle = await client.OpenAsync(_callers.For(context), nodeId, (uint)flags, NotInterruptible).ConfigureAwait(false);
            _handles[handle.Handle] = handle;

            // Close-to-open, as NFS keeps it: the kernel keeps its cached pages (KEEP_CACHE) only
            // when the size and mtime the MDS has now are those the kernel last saw. A change it saw
            // already dropped those pages (AUTO_INVAL_DATA compares mtime and size on every
            // attribute refresh), and every write, truncate or punch moves the mtime, so what
            // another client wrote and closed is never served from old pages. If the file changed
            // since, the kernel drops its cached attributes as well as its pages.
            var now = ((ulong)handle.Size, handle.OpenedMtimeNs);
            var seen = _shownToKernel.TryGetValue(nodeId, out var shown);
            if (seen && shown != now)
            {
                InvalidateInode?.Invoke(nodeId);
            }

            return new FuseOpen(handle.Handle, KeepCache: seen && shown == now && (flags & OTrunc) == 0);
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }

    public async ValueTask<(FuseEntry Entry, FuseOpen Open)> CreateAsync(FuseContext context, ulong parent, string name, uint mode, int flags, uint umask)
    {
        try
        {
            var exclusive = (flags & 0x80) != 0;
            var version = client.EntryVersion(parent, name);
            var attrVersions = client.AttrVersions();
            var (attr, handle) = await client.CreateAsync(_callers.For(context), parent, name, FileType.Regular, mode & ~umask & 0xFFF, (uint)flags, exclusive, cancellationToken: NotInterruptible).ConfigureAwait(false);
            _handles[handle!.Handle] = handle;
            return (Trusted(attr.Attr, parent, name, version, attrVersions), new FuseOpen(handle.Handle));
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }

    public async ValueTask<int> ReadAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, Memory<byte> destination)
    {
        var started = _readPriority?.ReadStarted() ?? 0;
        try
        {
            return await client.ReadAsync(Handle(fileHandle), offset, destination, context.Cancellation).ConfigureAwait(false);
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
        finally
        {
            _readPriority?.ReadFinished(started, destination.Length);
        }
    }

    /// <summary>Writes at least this large keep their request buffer instead of a copy (the buffer is max_write, 1 MiB).</summary>
    private const int RetainedWriteBytes = 512 * 1024;

    public async ValueTask<int> WriteAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, ReadOnlyMemory<byte> data, uint writeFlags)
    {
        try
        {
            // A large write's bytes stay in the kernel request's buffer until they are sent, not
            // copied; a small one is copied, so a few bytes never pin a whole request buffer.
            var owner = data.Length >= RetainedWriteBytes ? context.RetainRequest() : null;
            var written = await client.WriteAsync(Handle(fileHandle), offset, data, owner, NotInterruptible).ConfigureAwait(false);
            if (_readPriority is { } throttle)
            {
                // The bytes are accepted; the writer's next write waits while small reads need the room.
                await throttle.BeforeWriteReplyAsync(data.Length).ConfigureAwait(false);
            }

            return written;
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }

    public async ValueTask FlushAsync(FuseContext context, ulong nodeId, ulong fileHandle, ulong lockOwner)
    {
        try
        {
            try
            {
                await client.FlushAsync(Handle(fileHandle), NotInterruptible).ConfigureAwait(false);
            }
            finally
            {
                await ReleaseRecordLocksAsync(nodeId, lockOwner).ConfigureAwait(false);
            }
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }

    public async ValueTask ReleaseAsync(FuseContext context, ulong nodeId, ulong fileHandle, int flags)
    {
        if (!_handles.TryRemove(fileHandle, out var handle))
        {
            return;
        }

        try
        {
            try
            {
                await ReleaseHandleLocksAsync(nodeId, fileHandle).ConfigureAwait(false);
            }
            finally
            {
                await client.ReleaseAsync(handle, CancellationToken.None).ConfigureAwait(false);
            }
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }

    public async ValueTask FsyncAsync(FuseContext context, ulong nodeId, ulong fileHandle, bool dataOnly)
    {
        try
        {
            await client.FsyncAsync(Handle(fileHandle), context.Cancellation).ConfigureAwait(false);
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }

    public ValueTask<FuseOpen> OpenDirAsync(FuseContext context, ulong nodeId, int flags) =>
        ValueTask.FromResult(new FuseOpen((ulong)Interlocked.Increment(ref _lastDirHandle)));

    /// <summary>
    /// Directory offsets: 1 and 2 follow "." and ".."; an entry with MDS cookie c is followed by
    /// offset c + 2. MDS cookies only grow, so a listing resumed at an offset neither repeats nor
    /// skips entries that stay while the directory changes.
    /// </summary>
    public async ValueTask ReadDirAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, FuseDirectoryBuffer buffer, bool plus)
    {
        try
        {
            var caller = _callers.For(context);
            if (offset == 0)
            {
                var self = (await client.GetAttrAsync(nodeId, cancellationToken: context.Cancellation).ConfigureAwait(false)).Attr;
                if (!AddDot(buffer, ".", self, 1, plus))
                {
                    return;
                }
            }

            if (offset <= 1)
            {
                var parent = (await client.LookupAsync(caller, nodeId, "..", context.Cancellation).ConfigureAwait(false)).Attr;
                if (!AddDot(buffer, "..", parent, 2, plus))
                {
                    return;
                }
            }

            var cookie = (ulong)Math.Max(0, offset - 2);
            while (true)
            {
                var entryVersions = plus ? client.EntryVersions() : [];
                var attrVersions = plus ? client.AttrVersions() : [];
                var page = await client.ReaddirAsync(caller, nodeId, cookie, 256, plus, context.Cancellation).ConfigureAwait(false);
                foreach (var entry in page.Entries)
                {
                    var next = (long)entry.Cookie + 2;
                    bool added;
                    if (plus && entry.Attr is { } attr)
                    {
                        // Leased like a lookup's answer (a loader that lists a directory opens its
                        // files with no LOOKUP); its attributes count as shown only if the
                        // kernel's buffer took the entry.
                        var entryTimeout = EntryLease(nodeId, entry.Name, () => client.EntryUnchanged(nodeId, entry.Name, entryVersions));
                        var leased = new FuseEntry(attr.Ino, 0, Conversions.ToFuse(attr), entryTimeout, AttrTimeout(attr.Ino, attrVersions));
                        added = buffer.AddPlus(entry.Name, leased, next);
                        if (added)
                        {
                            Shown(attr);
                        }
                    }
                    else
                    {
                        added = buffer.Add(entry.Name, entry.Ino, Conversions.DirentType(entry.Type), next);
                    }

                    if (!added)
                    {
                        return;
                    }

                    cookie = entry.Cookie;
                }

                if (!page.More)
                {
                    return;
                }
            }
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }

    public ValueTask ReleaseDirAsync(FuseContext context, ulong nodeId, ulong fileHandle) => ValueTask.CompletedTask;

    /// <summary>Every metadata change is durable at the MDS when its reply is sent: nothing to sync.</summary>
    public ValueTask FsyncDirAsync(FuseContext context, ulong nodeId, ulong fileHandle, bool dataOnly) => ValueTask.CompletedTask;

    public async ValueTask<FuseStatFs> StatFsAsync(FuseContext context, ulong nodeId)
    {
        try
        {
            var s = await client.StatFsAsync(context.Cancellation).ConfigureAwait(false);
            var block = Math.Max(s.BlockSize, 4096u);
            return new FuseStatFs(s.CapacityBytes / block, s.FreeBytes / block, s.FreeBytes / block, s.Inodes, s.FreeInodes, block, s.MaxNameLength, block);
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }

    /// <summary>access(2) with the POSIX rules the MDS applies (root may do anything but execute a file no one may execute).</summary>
    public async ValueTask AccessAsync(FuseContext context, ulong nodeId, int mask)
    {
        AttrReply reply;
        try
        {
            reply = await client.GetAttrAsync(nodeId, cancellationToken: context.Cancellation).ConfigureAwait(false);
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }

        var a = reply.Attr;
        var want = mask & 7;
        if (want == 0)
        {
            return;
        }

        var caller = _callers.For(context);
        var allowed = PosixPermissions.Allows(a.Mode, a.Type == FileType.Directory, a.Uid, a.Gid, context.Uid, gid => caller.Gid == gid || caller.Groups.Contains(gid), want);
        if (!allowed)
        {
            throw new FuseException(EACCES, $"uid {context.Uid} may not access inode {nodeId} with mask {mask}");
        }
    }

    public async ValueTask FallocateAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, long length, int mode)
    {
        const int KeepSize = 0x01;
        const int PunchHole = 0x02;
        try
        {
            var handle = Handle(fileHandle);
            if (mode == (KeepSize | PunchHole))
            {
                await client.PunchHoleAsync(handle, offset, length, NotInterruptible).ConfigureAwait(false);
                return;
            }

            if (mode is 0 or KeepSize)
            {
                // ParaFS does not reserve space ahead; plain fallocate only extends the size.
                if (mode == 0 && offset + length > handle.Size)
                {
                    await client.SetAttrAsync(_callers.For(context), new SetAttrRequest { Ino = nodeId, Valid = (uint)SetAttrField.Size, Size = (ulong)(offset + length) }, handle, NotInterruptible).ConfigureAwait(false);
                }

                return;
            }

            throw new FuseException(EOPNOTSUPP, $"fallocate mode 0x{mode:x} is not supported (only punch hole with keep size, and plain allocation)");
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }

    public async ValueTask<long> LseekAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, int whence)
    {
        try
        {
            return await client.SeekAsync(Handle(fileHandle), offset, whence).ConfigureAwait(false);
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }

    public void Destroy()
    {
    }

    /// <summary>A ParaFS error as the kernel should see it: the same errno, the message kept for logs.</summary>
    private FuseException Translate(ParaFsException e) => _errors.Translate(e);

    private FileHandle Handle(ulong fileHandle) =>
        _handles.TryGetValue(fileHandle, out var handle) ? handle : throw new FuseException(EBADF, $"file handle {fileHandle} is not open");

    private FuseEntry Entry(Attr attr) => new(attr.Ino, 0, Shown(attr), _timeout, _timeout);

    /// <summary>
    /// The entry and its attributes for the kernel to keep for the lease: the MDS calls back when
    /// either changes. Each only when nothing revoked it while the call that answered it was on
    /// its way (the version taken before the call still holds once the key is recorded, so a
    /// revocation of everything cannot pass it by); otherwise, or when the table is full, the
    /// short timeout.
    /// </summary>
    private FuseEntry Trusted(Attr attr, ulong parent, string name, long entryVersion, long[] attrVersions) =>
        new(attr.Ino, 0, Shown(attr), EntryLease(parent, name, entryVersion), AttrTimeout(attr.Ino, attrVersions));

    /// <summary>The lease for an entry answered by a call made at <paramref name="version"/> (<see cref="ParaFsClient.EntryVersion"/>).</summary>
    private TimeSpan EntryLease(ulong parent, string name, long version) =>
        EntryLease(parent, name, () => client.EntryVersion(parent, name) == version);

    /// <summary>The lease for the entry when <paramref name="unchanged"/> still holds once it is recorded; the short timeout otherwise.</summary>
    private TimeSpan EntryLease(ulong parent, string name, Func<bool> unchanged)
    {
        if (_lease > _timeout && _trustedEntries.TryAdd((parent, name), LeaseEnd))
        {
            if (unchanged())
            {
                return _lease;
            }

            _trustedEntries.Remove((parent, name));
        }

        return _timeout;
    }

    /// <summary>The lease for the attributes of <paramref name="ino"/> when nothing dropped them since <paramref name="versions"/> were taken; the short timeout otherwise.</summary>
    private TimeSpan AttrTimeout(ulong ino, long[] versions)
    {
        if (_lease > _timeout && _trustedAttrs.TryAdd(ino, LeaseEnd))
        {
            if (client.AttrUnchanged(ino, versions))
            {
                return _lease;
            }

            _trustedAttrs.Remove(ino);
        }

        return _timeout;
    }

    private long LeaseEnd => Environment.TickCount64 + (long)_lease.TotalMilliseconds;

    private FuseAttr Shown(Attr attr)
    {
        if (attr.Type == FileType.Regular)
        {
            _shownToKernel[attr.Ino] = (attr.Size, attr.MtimeNs);
        }

        return Conversions.ToFuse(attr);
    }

    /// <summary>"." and "..": with readdirplus they carry the directory's attributes (the kernel does not count them as lookups).</summary>
    private bool AddDot(FuseDirectoryBuffer buffer, string name, Attr directory, long next, bool plus) =>
        plus ? buffer.AddPlus(name, Entry(directory), next) : buffer.Add(name, directory.Ino, Conversions.DirentType(FileType.Directory), next);

    private async ValueTask<FuseEntry> MakeAsync(FuseContext context, ulong parent, string name, FileType type, uint mode, uint rdev, string target)
    {
        try
        {
            var version = client.EntryVersion(parent, name);
            var attrVersions = client.AttrVersions();
            var (attr, _) = await client.CreateAsync(_callers.For(context), parent, name, type, mode & 0xFFF, null, true, rdev, target, NotInterruptible).ConfigureAwait(false);
            return Trusted(attr.Attr, parent, name, version, attrVersions);
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }

    private async ValueTask RemoveAsync(FuseContext context, ulong parent, string name, bool directory)
    {
        try
        {
            await client.RemoveAsync(_callers.For(context), parent, name, directory, NotInterruptible).ConfigureAwait(false);
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }
}
