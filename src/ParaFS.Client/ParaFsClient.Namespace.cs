using Google.Protobuf;
using ParaFS.Common;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using Empty = ParaFS.Protocol.Ost.Empty;

namespace ParaFS.Client;

public sealed partial class ParaFsClient
{
    public async Task<AttrReply> LookupAsync(Caller caller, ulong parent, string name, CancellationToken cancellationToken = default)
    {
        if (_cache.GetEntry(parent, name) is { } cachedIno && _cache.GetAttr(cachedIno) is { } cached)
        {
            return WithLocalSize(cached);
        }

        var version = _cache.EntryVersion(parent, name);
        var attrVersions = _cache.AttrVersions();
        var reply = await _mds.CallAsync(Methods.MdsLookup, new LookupRequest { Caller = caller, Parent = parent, Name = name }, AttrReply.Parser, idempotent: true, cancellationToken).ConfigureAwait(false);
        _cache.PutEntry(parent, name, reply.Attr.Ino, version);
        _cache.PutAttr(reply, attrVersions);
        return WithLocalSize(reply);
    }

    /// <summary>getattr; <paramref name="fresh"/> skips the cache (close-to-open: an open always asks the MDS).</summary>
    public async Task<AttrReply> GetAttrAsync(ulong ino, bool fresh = false, CancellationToken cancellationToken = default)
    {
        if (!fresh && _cache.GetAttr(ino) is { } cached)
        {
            return WithLocalSize(cached);
        }

        var versions = _cache.AttrVersions();
        var reply = await _mds.CallAsync(Methods.MdsGetAttr, new GetAttrRequest { Ino = ino }, AttrReply.Parser, idempotent: true, cancellationToken).ConfigureAwait(false);
        _cache.PutAttr(reply, versions);
        return WithLocalSize(reply);
    }

    /// <summary>setattr. A size change first tells the MDS what this client wrote, then truncates through the MDS (which cuts the objects).</summary>
    public async Task<AttrReply> SetAttrAsync(Caller caller, SetAttrRequest request, FileHandle? handle = null, CancellationToken cancellationToken = default)
    {
        request.Caller = caller;
        var fields = (SetAttrField)request.Valid;
        var sizing = fields.HasFlag(SetAttrField.Size);

        // What this client wrote goes to the MDS first: a size or time set now must not be
        // overtaken by an older write's size or mtime reported later (cp -a writes, then sets mtime).
        if (sizing || (fields & (SetAttrField.Mtime | SetAttrField.MtimeNow | SetAttrField.Atime | SetAttrField.AtimeNow)) != 0)
        {
            await SettleWritesAsync(request.Ino).ConfigureAwait(false);
            await ReportPendingAsync(request.Ino, cancellationToken).ConfigureAwait(false);
        }

        if (sizing)
        {
            request.Handle = handle?.Handle ?? 0;
        }

        var versions = _cache.AttrVersions();
        var reply = await _mds.CallAsync(Methods.MdsSetAttr, request, AttrReply.Parser, idempotent: !sizing, cancellationToken).ConfigureAwait(false);
        if (sizing)
        {
            foreach (var h in HandlesOf(request.Ino))
            {
                h.ResetSize((long)reply.Attr.Size);
            }
        }

        _cache.PutAttr(reply, versions);
        return WithLocalSize(reply);
    }

    /// <summary>create, mknod, mkdir, symlink. With <paramref name="openFlags"/> set, a regular file is also opened (O_CREAT) and its handle returned.</summary>
    public async Task<(AttrReply Attr, FileHandle? Handle)> CreateAsync(
        Caller caller, ulong parent, string name, FileType type, uint mode, uint? openFlags = null, bool exclusive = false, ulong rdev = 0, string symlinkTarget = "",
        CancellationToken cancellationToken = default)
    {
        var request = new CreateRequest
        {
            Caller = caller,
            Parent = parent,
            Name = name,
            Type = type,
            Mode = mode,
            Rdev = rdev,
            Exclusive = exclusive || openFlags is null,
            Open = openFlags is not null,
            OpenFlags = openFlags ?? 0,
            SymlinkTarget = symlinkTarget,
        };
        var truncating = !request.Exclusive && (request.OpenFlags & OpenTruncate) != 0;
        if (truncating)
        {
            // It may open (and truncate) a file this client has written without telling the MDS yet.
            foreach (var ino in _writes.Keys)
            {
                await SettleWritesAsync(ino).ConfigureAwait(false);
            }

            await ReportSizesAsync().ConfigureAwait(false);
        }

        var version = _cache.EntryVersion(parent, name);
        var attrVersions = _cache.AttrVersions();
        var reply = await ChangingDirectoryAsync(parent, () => _mds.CallAsync(Methods.MdsCreate, request, EntryReply.Parser, idempotent: false, cancellationToken), r => r.Parent).ConfigureAwait(false);
        if (truncating)
        {
            foreach (var other in HandlesOf(reply.Attr.Ino))
            {
                other.ResetSize((long)reply.Attr.Size);
            }
        }

        var attr = new AttrReply { Attr = reply.Attr, Layout = reply.Layout };
        _cache.PutEntry(parent, name, reply.Attr.Ino, version);
        _cache.PutAttr(attr, attrVersions);
        if ((request.Exclusive || reply.Created) && type == FileType.Regular)
        {
            // A file made just now has no extended attributes: its first write need not ask.
            _cache.PutSecurityXattr(reply.Attr.Ino, CapabilityXattr, null);
        }
        FileHandle? handle = null;
        if (reply.Handle != 0)
        {
            handle = new FileHandle(reply.Handle, reply.Attr, reply.Layout ?? new Layout(), openFlags!.Value, _options.PerFileRequests);
            _open[handle.Handle] = handle;
        }

        return (attr, handle);
    }

    /// <summary>
    /// Runs <paramref name="call"/>, which changes directory <paramref name="parent"/> and answers
    /// with its attributes: they are kept, so the kernel's next look at the directory (it drops
    /// what it had after a create or an unlink) needs no round trip. Without them (an older MDS, a
    /// reply from the record of a retried call), or when another call of this client changed the
    /// directory meanwhile, they are dropped.
    /// </summary>
    private async Task<T> ChangingDirectoryAsync<T>(ulong parent, Func<Task<T>> call, Func<T, AttrReply?> attrs)
    {
        var token = _cache.BeginChange(parent);
        T reply = default!;
        try
        {
            reply = await call().ConfigureAwait(false);
            return reply;
        }
        finally
        {
            _cache.EndChange(parent, token, reply is null ? null : attrs(reply));
        }
    }

    public async Task<string> ReadlinkAsync(ulong ino, CancellationToken cancellationToken = default) =>
        (await _mds.CallAsync(Methods.MdsReadlink, new GetAttrRequest { Ino = ino }, ReadlinkReply.Parser, idempotent: true, cancellationToken).ConfigureAwait(false)).Target;

    public async Task<AttrReply> LinkAsync(Caller caller, ulong ino, ulong newParent, string newName, CancellationToken cancellationToken = default)
    {
        var version = _cache.EntryVersion(newParent, newName);
        var attrVersions = _cache.AttrVersions();
        var reply = await _mds.CallAsync(Methods.MdsLink, new LinkRequest { Caller = caller, Ino = ino, NewParent = newParent, NewName = newName }, AttrReply.Parser, idempotent: false, cancellationToken).ConfigureAwait(false);
        _cache.PutAttr(reply, attrVersions);
        _cache.PutEntry(newParent, newName, ino, version);

        // Attributes handed out never show less than this client wrote (the kernel takes the size
        // of every entry reply as the file's size).
        return WithLocalSize(reply);
    }

    public async Task RemoveAsync(Caller caller, ulong parent, string name, bool directory, CancellationToken cancellationToken = default)
    {
        var ino = _cache.GetEntry(parent, name);
        _cache.DropEntry(parent, name);
        var request = new RemoveRequest { Caller = caller, Parent = parent, Name = name, Directory = directory };
        try
        {
            await ChangingDirectoryAsync(parent, () => _mds.CallAsync(Methods.MdsRemove, request, RemoveReply.Parser, idempotent: false, cancellationToken), r => r.Parent).ConfigureAwait(false);
        }
        finally
        {
            // A lookup of this client that ran beside the removal may have put the old entry back.
            _cache.DropEntry(parent, name);
        }

        if (ino is { } known)
        {
            _cache.DropAttr(known);
        }
    }

    public async Task RenameAsync(Caller caller, ulong parent, string name, ulong newParent, string newName, uint flags = 0, CancellationToken cancellationToken = default)
    {
        _cache.DropEntry(parent, name);
        _cache.DropEntry(newParent, newName);
        try
        {
            await _mds.CallAsync(Methods.MdsRename, new RenameRequest { Caller = caller, Parent = parent, Name = name, NewParent = newParent, NewName = newName, Flags = flags }, Empty.Parser, idempotent: false, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            // As in RemoveAsync: a lookup that ran beside the rename may have put an old entry back.
            _cache.DropEntry(parent, name);
            _cache.DropEntry(newParent, newName);
        }

        _cache.DropAttr(parent);
        _cache.DropAttr(newParent);
    }

    /// <summary>One page of a directory after <paramref name="cookie"/>; with <paramref name="plus"/>, each entry's attributes (and the cache learns them).</summary>
    public async Task<ReaddirReply> ReaddirAsync(Caller caller, ulong ino, ulong cookie, uint limit, bool plus, CancellationToken cancellationToken = default)
    {
        var versions = _cache.EntryVersions();
        var reply = await _mds.CallAsync(Methods.MdsReaddir, new ReaddirRequest { Caller = caller, Ino = ino, Cookie = cookie, Limit = limit, Plus = plus }, ReaddirReply.Parser, idempotent: true, cancellationToken).ConfigureAwait(false);
        foreach (var entry in reply.Entries)
        {
            _cache.PutEntry(ino, entry.Name, entry.Ino, versions);
            if (entry.Attr is { } attr)
            {
                attr.Size = (ulong)Math.Max((long)attr.Size, LocalSize(attr.Ino));
            }
        }

        return reply;
    }

    public async Task SetXattrAsync(Caller caller, ulong ino, string name, ReadOnlyMemory<byte> value, uint flags, CancellationToken cancellationToken = default)
    {
        try
        {
            await _mds.CallAsync(Methods.MdsSetXattr, new XattrRequest { Caller = caller, Ino = ino, Name = name, Value = ByteString.CopyFrom(value.Span), Flags = flags }, Empty.Parser, idempotent: false, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _cache.DropXattrs(ino);
        }
    }

    /// <summary>Extended attributes every caller may read (the MDS's rule), so one cached answer serves all.</summary>
    private const string SecurityXattrPrefix = "security.";

    /// <summary>The file capabilities the kernel looks for before each write(2) (XATTR_NAME_CAPS).</summary>
    private const string CapabilityXattr = "security.capability";

    /// <summary>
    /// getxattr. A security.* attribute reads the same for every caller, so its answer (a value or
    /// ENODATA) is kept for the cache lifetime, until this client changes the inode's attributes or
    /// the MDS calls back that another did: the kernel asks for security.capability before every
    /// write(2), and a round trip to the MDS per write would cost more than the write.
    /// </summary>
    public async Task<byte[]> GetXattrAsync(Caller caller, ulong ino, string name, CancellationToken cancellationToken = default)
    {
        var shared = name.StartsWith(SecurityXattrPrefix, StringComparison.Ordinal);
        if (shared && _cache.TryGetSecurityXattr(ino, name, out var known))
        {
            return known ?? throw new ParaFsException(Errno.ENODATA, $"no extended attribute {name} on inode {ino}");
        }

        // An answer is kept only if no change of the inode's xattrs was seen while it was asked for.
        var version = _cache.XattrVersion(ino);
        try
        {
            var value = (await _mds.CallAsync(Methods.MdsGetXattr, new XattrRequest { Caller = caller, Ino = ino, Name = name }, XattrReply.Parser, idempotent: true, cancellationToken).ConfigureAwait(false)).Value.ToByteArray();
            if (shared)
            {
                _cache.PutSecurityXattr(ino, name, value, version);
            }

            return value;
        }
        catch (ParaFsException e) when (shared && e.Errno == Errno.ENODATA)
        {
            _cache.PutSecurityXattr(ino, name, null, version);
            throw;
        }
    }

    public async Task<IReadOnlyList<string>> ListXattrAsync(Caller caller, ulong ino, CancellationToken cancellationToken = default) =>
        (await _mds.CallAsync(Methods.MdsListXattr, new XattrRequest { Caller = caller, Ino = ino }, XattrReply.Parser, idempotent: true, cancellationToken).ConfigureAwait(false)).Names;

    public async Task RemoveXattrAsync(Caller caller, ulong ino, string name, CancellationToken cancellationToken = default)
    {
        try
        {
            await _mds.CallAsync(Methods.MdsRemoveXattr, new XattrRequest { Caller = caller, Ino = ino, Name = name }, Empty.Parser, idempotent: false, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _cache.DropXattrs(ino);
        }
    }

    public Task<StatFsReply> StatFsAsync(CancellationToken cancellationToken = default) =>
        _mds.CallAsync(Methods.MdsStatFs, new StatFsRequest(), StatFsReply.Parser, idempotent: true, cancellationToken);

    public async Task<GetStripeReply> SetStripeAsync(Caller caller, ulong ino, LayoutPolicy policy, CancellationToken cancellationToken = default)
    {
        var reply = await _mds.CallAsync(Methods.MdsSetStripe, new SetStripeRequest { Caller = caller, Ino = ino, Policy = policy }, GetStripeReply.Parser, idempotent: false, cancellationToken).ConfigureAwait(false);
        _cache.DropAttr(ino);
        foreach (var h in HandlesOf(ino))
        {
            if (reply.Layout is { } layout)
            {
                h.SetLayout(layout);
            }
        }

        return reply;
    }

    public Task<GetStripeReply> GetStripeAsync(ulong ino, CancellationToken cancellationToken = default) =>
        _mds.CallAsync(Methods.MdsGetStripe, new GetStripeRequest { Ino = ino }, GetStripeReply.Parser, idempotent: true, cancellationToken);

    private IEnumerable<FileHandle> HandlesOf(ulong ino) => _open.Values.Where(h => h.Ino == ino);

    /// <summary>How far this client's open handles of the inode have written or seen the file (0 with none).</summary>
    private long LocalSize(ulong ino) => HandlesOf(ino).Select(h => h.Size).DefaultIfEmpty(0).Max();

    /// <summary>The MDS's attributes with this client's own unreported writes folded in (read-your-writes).</summary>
    private AttrReply WithLocalSize(AttrReply reply)
    {
        var local = LocalSize(reply.Attr.Ino);
        if (local <= (long)reply.Attr.Size)
        {
            return reply;
        }

        var copy = reply.Clone();
        copy.Attr.Size = (ulong)local;
        return copy;
    }

    private async Task ReportPendingAsync(ulong ino, CancellationToken cancellationToken)
    {
        var pending = HandlesOf(ino).Select(h => (Handle: h, Report: h.PendingReport())).Where(p => p.Report is not null).ToList();
        if (pending.Count == 0)
        {
            return;
        }

        var request = new SizeReportRequest();
        request.Reports.AddRange(pending.Select(p => p.Report!));
        await _mds.CallAsync(Methods.MdsReportSize, request, Empty.Parser, idempotent: true, cancellationToken).ConfigureAwait(false);
        foreach (var (handle, report) in pending)
        {
            handle.Reported(report!);
        }

        // The MDS has a newer size than any attributes cached before: a lookup answered from them
        // would shrink the kernel's view of the file once the handles are gone.
        _cache.DropAttr(ino);
    }
}
