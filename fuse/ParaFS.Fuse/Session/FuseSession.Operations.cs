using System.Text;
using ParaFS.Fuse.Interop;
using ParaFS.Fuse.Protocol;
using ParaFS.Fuse.Session;

namespace ParaFS.Fuse;

/// <summary>
/// Each opcode: parse its arguments (reference 1.4/1.5), call the file system, write the reply.
/// A reply is always the last thing an operation does, so an exception means nothing was sent
/// and <see cref="ExecuteAsync"/> answers with the error.
/// </summary>
public sealed partial class FuseSession
{
    private ValueTask DispatchAsync(Request r) => r.Opcode switch
    {
        FuseOpcode.Lookup => LookupAsync(r),
        FuseOpcode.GetAttr => GetAttrAsync(r),
        FuseOpcode.SetAttr => SetAttrAsync(r),
        FuseOpcode.ReadLink => ReadLinkAsync(r),
        FuseOpcode.Symlink => SymlinkAsync(r),
        FuseOpcode.Mknod => MknodAsync(r),
        FuseOpcode.Mkdir => MkdirAsync(r),
        FuseOpcode.Unlink => UnlinkAsync(r),
        FuseOpcode.Rmdir => RmdirAsync(r),
        FuseOpcode.Rename => RenameAsync(r, r.Arg<FuseRenameIn>().NewDir, 0, sizeof(ulong)),
        FuseOpcode.Rename2 => Rename2Async(r),
        FuseOpcode.Link => LinkAsync(r),
        FuseOpcode.Open => OpenAsync(r),
        FuseOpcode.Read => ReadAsync(r),
        FuseOpcode.Write => WriteAsync(r),
        FuseOpcode.StatFs => StatFsAsync(r),
        FuseOpcode.Release => ReleaseAsync(r),
        FuseOpcode.Fsync => FsyncAsync(r),
        FuseOpcode.SetXattr => SetXattrAsync(r),
        FuseOpcode.GetXattr => GetXattrAsync(r),
        FuseOpcode.ListXattr => ListXattrAsync(r),
        FuseOpcode.RemoveXattr => RemoveXattrAsync(r),
        FuseOpcode.Flush => FlushAsync(r),
        FuseOpcode.OpenDir => OpenDirAsync(r),
        FuseOpcode.ReadDir => ReadDirAsync(r, plus: false),
        FuseOpcode.ReadDirPlus => ReadDirAsync(r, plus: true),
        FuseOpcode.ReleaseDir => ReleaseDirAsync(r),
        FuseOpcode.FsyncDir => FsyncDirAsync(r),
        FuseOpcode.Access => AccessAsync(r),
        FuseOpcode.Create => CreateAsync(r),
        FuseOpcode.Fallocate => FallocateAsync(r),
        FuseOpcode.Lseek => LseekAsync(r),
        FuseOpcode.Destroy => Destroy(r),
        FuseOpcode.GetLk => GetLockAsync(r),
        FuseOpcode.SetLk => SetLockAsync(r, wait: false),
        FuseOpcode.SetLkW => SetLockAsync(r, wait: true),

        // BMAP (fuseblk), IOCTL, POLL, COPY_FILE_RANGE(_64),
        // SYNCFS, TMPFILE, STATX, DAX mappings and anything newer: ENOSYS, which the kernel remembers.
        _ => NotImplemented(r),
    };

    private ValueTask NotImplemented(Request r)
    {
        ReplyError(r, Errno.ENOSYS);
        return ValueTask.CompletedTask;
    }

    private ValueTask Destroy(Request r)
    {
        // Sent only for fuseblk mounts; a plain fuse daemon learns of the end from ENODEV.
        DestroyOnce();
        Reply(r, []);
        return ValueTask.CompletedTask;
    }

    private async ValueTask LookupAsync(Request r)
    {
        var offset = 0;
        var name = r.Name(ref offset);
        var entry = await _fileSystem.LookupAsync(r.Context, r.Header.NodeId, name).ConfigureAwait(false);
        Reply(r, Wire.EntryOut(entry));
    }

    private async ValueTask GetAttrAsync(Request r)
    {
        var arg = r.Arg<FuseGetAttrIn>();
        ulong? handle = (arg.GetAttrFlags & RequestFlags.GetAttrFh) != 0 ? arg.Fh : null;
        var (attr, timeout) = await _fileSystem.GetAttrAsync(r.Context, r.Header.NodeId, handle).ConfigureAwait(false);
        Reply(r, Wire.AttrReply(attr, timeout));
    }

    private async ValueTask SetAttrAsync(Request r)
    {
        var changes = Wire.SetAttr(r.Arg<FuseSetAttrIn>());
        var (attr, timeout) = await _fileSystem.SetAttrAsync(r.Context, r.Header.NodeId, changes).ConfigureAwait(false);
        Reply(r, Wire.AttrReply(attr, timeout));
    }

    private async ValueTask ReadLinkAsync(Request r)
    {
        var target = await _fileSystem.ReadLinkAsync(r.Context, r.Header.NodeId).ConfigureAwait(false);
        var length = Encoding.UTF8.GetByteCount(target);
        if (length > r.Capacity)
        {
            throw new FuseException(Errno.ERANGE, $"symlink target of {length} bytes is too long");
        }

        Encoding.UTF8.GetBytes(target, r.Buffer);
        Reply(r, r.Buffer[..length]);
    }

    private async ValueTask SymlinkAsync(Request r)
    {
        // The new entry's name first, then the link target (libfuse _do_symlink).
        var offset = 0;
        var name = r.Name(ref offset);
        var target = r.Name(ref offset);
        var entry = await _fileSystem.SymlinkAsync(r.Context, r.Header.NodeId, name, target).ConfigureAwait(false);
        Reply(r, Wire.EntryOut(entry));
    }

    private async ValueTask MknodAsync(Request r)
    {
        var arg = r.Arg<FuseMknodIn>();
        var offset = 16;
        var name = r.Name(ref offset);
        var entry = await _fileSystem.MknodAsync(r.Context, r.Header.NodeId, name, arg.Mode, arg.Rdev, arg.Umask).ConfigureAwait(false);
        Reply(r, Wire.EntryOut(entry));
    }

    private async ValueTask MkdirAsync(Request r)
    {
        var arg = r.Arg<FuseMkdirIn>();
        var offset = 8;
        var name = r.Name(ref offset);
        var entry = await _fileSystem.MkdirAsync(r.Context, r.Header.NodeId, name, arg.Mode, arg.Umask).ConfigureAwait(false);
        Reply(r, Wire.EntryOut(entry));
    }

    private async ValueTask UnlinkAsync(Request r)
    {
        var offset = 0;
        var name = r.Name(ref offset);
        await _fileSystem.UnlinkAsync(r.Context, r.Header.NodeId, name).ConfigureAwait(false);
        Reply(r, []);
    }

    private async ValueTask RmdirAsync(Request r)
    {
        var offset = 0;
        var name = r.Name(ref offset);
        await _fileSystem.RmdirAsync(r.Context, r.Header.NodeId, name).ConfigureAwait(false);
        Reply(r, []);
    }

    private async ValueTask RenameAsync(Request r, ulong newParent, uint flags, int namesAt)
    {
        var offset = namesAt;
        var name = r.Name(ref offset);
        var newName = r.Name(ref offset);
        await _fileSystem.RenameAsync(r.Context, r.Header.NodeId, name, newParent, newName, flags).ConfigureAwait(false);
        Reply(r, []);
    }

    private ValueTask Rename2Async(Request r)
    {
        var arg = r.Arg<FuseRename2In>();
        return RenameAsync(r, arg.NewDir, arg.Flags, 16);
    }

    private async ValueTask LinkAsync(Request r)
    {
        // nodeid is the new parent; oldnodeid the existing inode.
        var existing = r.Arg<FuseLinkIn>().OldNodeId;
        var offset = 8;
        var name = r.Name(ref offset);
        var entry = await _fileSystem.LinkAsync(r.Context, existing, r.Header.NodeId, name).ConfigureAwait(false);
        Reply(r, Wire.EntryOut(entry));
    }

    private async ValueTask OpenAsync(Request r)
    {
        var arg = r.Arg<FuseOpenIn>();
        var open = await _fileSystem.OpenAsync(r.Context, r.Header.NodeId, (int)arg.Flags).ConfigureAwait(false);
        Reply(r, Wire.OpenOut(open));
    }

    private async ValueTask ReadAsync(Request r)
    {
        var arg = r.Arg<FuseReadIn>();
        var destination = r.Destination(arg.Size);
        var count = await _fileSystem.ReadAsync(r.Context, r.Header.NodeId, arg.Fh, (long)arg.Offset, destination).ConfigureAwait(false);
        Reply(r, r.Buffer[..CheckCount(count, destination.Length, "read")]);
    }

    private async ValueTask WriteAsync(Request r)
    {
        var arg = r.Arg<FuseWriteIn>();
        var data = r.BodyMemory(40, (int)arg.Size);
        var count = await _fileSystem.WriteAsync(r.Context, r.Header.NodeId, arg.Fh, (long)arg.Offset, data, arg.WriteFlags).ConfigureAwait(false);
        Reply(r, new FuseWriteOut { Size = (uint)CheckCount(count, data.Length, "write") });
    }

    private async ValueTask StatFsAsync(Request r)
    {
        var stat = await _fileSystem.StatFsAsync(r.Context, r.Header.NodeId).ConfigureAwait(false);
        Reply(r, new FuseStatFsOut { St = Wire.StatFs(stat) });
    }

    private async ValueTask ReleaseAsync(Request r)
    {
        var arg = r.Arg<FuseReleaseIn>();
        await _fileSystem.ReleaseAsync(r.Context, r.Header.NodeId, arg.Fh, (int)arg.Flags).ConfigureAwait(false);
        Reply(r, []);
    }

    private async ValueTask FsyncAsync(Request r)
    {
        var arg = r.Arg<FuseFsyncIn>();
        await _fileSystem.FsyncAsync(r.Context, r.Header.NodeId, arg.Fh, (arg.FsyncFlags & RequestFlags.FsyncDataSync) != 0).ConfigureAwait(false);
        Reply(r, []);
    }

    private async ValueTask SetXattrAsync(Request r)
    {
        // 8-byte header: FUSE_SETXATTR_EXT is not negotiated (reference trap 4).
        var size = r.Arg<uint>(0);
        var flags = r.Arg<uint>(4);
        var offset = FuseSetXattrIn.CompatSize;
        var name = r.Name(ref offset);
        var value = r.BodyMemory(offset, (int)size);
        await _fileSystem.SetXattrAsync(r.Context, r.Header.NodeId, name, value, (int)flags).ConfigureAwait(false);
        Reply(r, []);
    }

    private async ValueTask GetXattrAsync(Request r)
    {
        var arg = r.Arg<FuseGetXattrIn>();
        var offset = 8;
        var name = r.Name(ref offset);
        var destination = arg.Size == 0 ? Memory<byte>.Empty : r.Destination(arg.Size);
        var count = await _fileSystem.GetXattrAsync(r.Context, r.Header.NodeId, name, destination).ConfigureAwait(false);
        ReplyXattr(r, arg.Size, count, destination.Length);
    }

    private async ValueTask ListXattrAsync(Request r)
    {
        var arg = r.Arg<FuseGetXattrIn>();
        var destination = arg.Size == 0 ? Memory<byte>.Empty : r.Destination(arg.Size);
        var count = await _fileSystem.ListXattrAsync(r.Context, r.Header.NodeId, destination).ConfigureAwait(false);
        ReplyXattr(r, arg.Size, count, destination.Length);
    }

    /// <summary>Size 0 asks for the size (fuse_getxattr_out); otherwise the bytes, ERANGE if they did not fit.</summary>
    private void ReplyXattr(Request r, uint askedSize, int count, int room)
    {
        if (askedSize == 0)
        {
            Reply(r, new FuseGetXattrOut { Size = (uint)Math.Max(count, 0) });
        }
        else if (count > room)
        {
            ReplyError(r, Errno.ERANGE);
        }
        else
        {
            Reply(r, r.Buffer[..CheckCount(count, room, "getxattr")]);
        }
    }

    private async ValueTask RemoveXattrAsync(Request r)
    {
        var offset = 0;
        var name = r.Name(ref offset);
        await _fileSystem.RemoveXattrAsync(r.Context, r.Header.NodeId, name).ConfigureAwait(false);
        Reply(r, []);
    }

    private async ValueTask GetLockAsync(Request r)
    {
        var arg = r.Arg<FuseLkIn>();
        var held = await _fileSystem.GetLockAsync(r.Context, r.Header.NodeId, arg.Fh, arg.Owner, Lock(arg.Lk), (arg.LkFlags & RequestFlags.LkFlock) != 0).ConfigureAwait(false);
        Reply(r, new FuseLkOut { Lk = new FuseFileLock { Start = held.Start, End = held.End, Type = (uint)held.Type, Pid = held.Pid } });
    }

    private async ValueTask SetLockAsync(Request r, bool wait)
    {
        var arg = r.Arg<FuseLkIn>();
        await _fileSystem.SetLockAsync(r.Context, r.Header.NodeId, arg.Fh, arg.Owner, Lock(arg.Lk), (arg.LkFlags & RequestFlags.LkFlock) != 0, wait).ConfigureAwait(false);
        Reply(r, []);
    }

    private static FuseLock Lock(FuseFileLock lk) => new(lk.Start, lk.End, (int)lk.Type, lk.Pid);

    private async ValueTask FlushAsync(Request r)
    {
        var arg = r.Arg<FuseFlushIn>();
        await _fileSystem.FlushAsync(r.Context, r.Header.NodeId, arg.Fh, arg.LockOwner).ConfigureAwait(false);
        Reply(r, []);
    }

    private async ValueTask OpenDirAsync(Request r)
    {
        var arg = r.Arg<FuseOpenIn>();
        var open = await _fileSystem.OpenDirAsync(r.Context, r.Header.NodeId, (int)arg.Flags).ConfigureAwait(false);
        Reply(r, Wire.OpenOut(open));
    }

    private async ValueTask ReadDirAsync(Request r, bool plus)
    {
        var arg = r.Arg<FuseReadIn>();
        var writer = r.Directory.Reset(arg.Size);
        await _fileSystem.ReadDirAsync(r.Context, r.Header.NodeId, arg.Fh, (long)arg.Offset, writer, plus).ConfigureAwait(false);
        Reply(r, r.Buffer[..writer.Position]);
    }

    private async ValueTask ReleaseDirAsync(Request r)
    {
        var arg = r.Arg<FuseReleaseIn>();
        await _fileSystem.ReleaseDirAsync(r.Context, r.Header.NodeId, arg.Fh).ConfigureAwait(false);
        Reply(r, []);
    }

    private async ValueTask FsyncDirAsync(Request r)
    {
        var arg = r.Arg<FuseFsyncIn>();
        await _fileSystem.FsyncDirAsync(r.Context, r.Header.NodeId, arg.Fh, (arg.FsyncFlags & RequestFlags.FsyncDataSync) != 0).ConfigureAwait(false);
        Reply(r, []);
    }

    private async ValueTask AccessAsync(Request r)
    {
        var arg = r.Arg<FuseAccessIn>();
        await _fileSystem.AccessAsync(r.Context, r.Header.NodeId, (int)arg.Mask).ConfigureAwait(false);
        Reply(r, []);
    }

    private async ValueTask CreateAsync(Request r)
    {
        var arg = r.Arg<FuseCreateIn>();
        var offset = 16;
        var name = r.Name(ref offset);
        var (entry, open) = await _fileSystem.CreateAsync(r.Context, r.Header.NodeId, name, arg.Mode, (int)arg.Flags, arg.Umask).ConfigureAwait(false);
        Reply(r, new FuseCreateOut { Entry = Wire.EntryOut(entry), Open = Wire.OpenOut(open) });
    }

    private async ValueTask FallocateAsync(Request r)
    {
        var arg = r.Arg<FuseFallocateIn>();
        await _fileSystem.FallocateAsync(r.Context, r.Header.NodeId, arg.Fh, (long)arg.Offset, (long)arg.Length, (int)arg.Mode).ConfigureAwait(false);
        Reply(r, []);
    }

    private async ValueTask LseekAsync(Request r)
    {
        var arg = r.Arg<FuseLseekIn>();
        var position = await _fileSystem.LseekAsync(r.Context, r.Header.NodeId, arg.Fh, (long)arg.Offset, (int)arg.Whence).ConfigureAwait(false);
        Reply(r, new FuseLseekOut { Offset = (ulong)position });
    }

    /// <summary>A byte count from a handler must lie within what it was given.</summary>
    private static int CheckCount(int count, int room, string what) =>
        count >= 0 && count <= room
            ? count
            : throw new InvalidOperationException($"{what} handler returned {count} bytes for a buffer of {room}");
}
