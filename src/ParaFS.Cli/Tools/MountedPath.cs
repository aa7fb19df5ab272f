using ParaFS.Common;
using ParaFS.Common.Interop;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Cli.Tools;

/// <summary>
/// A path inside a ParaFS mount: which MDS serves it (the mount's source, from
/// /proc/self/mountinfo, where ParaFS mounts have fstype fuse.parafs and the MDS address as source)
/// and which inode it is (st_ino of a ParaFS file is its inode number).
/// </summary>
internal sealed record MountedPath(string Path, string MountPoint, RpcEndpoint Mds)
{
    public const string FsType = "fuse.parafs";

    /// <summary>Finds the ParaFS mount holding <paramref name="path"/> (which need not exist, but its directory must).</summary>
    public static MountedPath Resolve(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        var mount = Mounts()
            .Where(m => full == m.MountPoint || full.StartsWith(m.MountPoint.TrimEnd('/') + "/", StringComparison.Ordinal))
            .OrderByDescending(m => m.MountPoint.Length)
            .FirstOrDefault();
        if (mount.MountPoint is null)
        {
            throw new ParaFsException(Errno.EINVAL, $"{path}: not inside a ParaFS mount (no {FsType} mount holds {full}); mount one with `parafs mount MDS MOUNTPOINT` or give --mds HOST:PORT");
        }

        if (mount.FsType != FsType)
        {
            throw new ParaFsException(Errno.EINVAL, $"{path}: {mount.MountPoint} is a {mount.FsType} mount, not ParaFS");
        }

        RpcEndpoint mds;
        try
        {
            mds = RpcEndpoint.Parse(mount.Source);
        }
        catch (FormatException e)
        {
            throw new ParaFsException(Errno.EINVAL, $"{path}: the mount {mount.MountPoint} names its MDS as '{mount.Source}', which is not HOST:PORT: {e.Message}");
        }

        return new MountedPath(full, mount.MountPoint, mds);
    }

    /// <summary>The inode number of an existing path (statx; not following a final symlink).</summary>
    public static ulong Inode(string path)
    {
        const int AtSymlinkNoFollow = 0x100;
        if (Libc.StatxPath(Libc.AtFdCwd, path, AtSymlinkNoFollow, Libc.StatxIno | Libc.StatxTypeAndMode, out var stat) != 0)
        {
            var errno = Libc.LastErrno;
            throw new ParaFsException(errno, $"{path}: {(errno == Errno.ENOENT ? "no such file or directory" : $"cannot stat it ({errno})")}");
        }

        return stat.Inode;
    }

    private static IEnumerable<(string MountPoint, string FsType, string Source)> Mounts()
    {
        // mountinfo(5): ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            var fields = line.Split(' ');
            var dash = Array.IndexOf(fields, "-");
            if (dash < 5 || dash + 2 >= fields.Length)
            {
                continue;
            }

            yield return (Unescape(fields[4]), fields[dash + 1], Unescape(fields[dash + 2]));
        }
    }

    /// <summary>mountinfo escapes space, tab, newline and backslash as \ooo octal.</summary>
    private static string Unescape(string field) =>
        field.Replace("\\040", " ", StringComparison.Ordinal).Replace("\\011", "\t", StringComparison.Ordinal)
            .Replace("\\012", "\n", StringComparison.Ordinal).Replace("\\134", "\\", StringComparison.Ordinal);
}
