using System.Diagnostics;
using System.Globalization;
using System.Text;
using ParaFS.Fuse.Interop;

namespace ParaFS.Fuse.Mounting;

/// <summary>
/// Mounting and unmounting (reference section 3): mount(2) on an O_CLOEXEC /dev/fuse descriptor
/// as root, fusermount3 with the descriptor passed back over a socket (SCM_RIGHTS) otherwise.
/// </summary>
internal static unsafe class KernelMount
{
    private const string Fusermount = "fusermount3";
    private const uint SIfMt = 0xF000;
    private const uint SIfDir = 0x4000;

    public static bool IsRoot => Libc.GetEuid() == 0;

    /// <summary>Mounts and returns the /dev/fuse descriptor of the new connection (INIT is queued on it).</summary>
    public static int Mount(FuseMountOptions options, string mountPoint)
    {
        CheckMountPoint(mountPoint);
        var fstype = FuseSession.FileSystemType(options);
        return IsRoot && !options.UseFusermount
            ? MountDirect(options, mountPoint, fstype)
            : MountWithFusermount(options, mountPoint);
    }

    /// <summary>
    /// Unmounts: umount2 as root (lazy = MNT_DETACH), fusermount3 -u otherwise. Returns false if
    /// nothing was mounted there.
    /// </summary>
    public static bool Unmount(string mountPoint, bool lazy)
    {
        if (!IsRoot)
        {
            return RunFusermountUnmount(mountPoint, lazy);
        }

        if (Libc.Umount2(mountPoint, (lazy ? Libc.MntDetach : 0) | Libc.UmountNoFollow) == 0)
        {
            return true;
        }

        var errno = Libc.LastErrno;
        return errno switch
        {
            Errno.EINVAL or Errno.ENOENT => false,
            Errno.EBUSY => throw new FuseMountException(mountPoint, errno,
                $"FUSE mount point '{mountPoint}' is busy (open files or a working directory inside it): close them, or unmount lazily (FuseSession.Unmount(path, lazy: true) or `umount -l {mountPoint}`)"),
            _ => throw new FuseMountException(mountPoint, errno,
                $"unmounting '{mountPoint}' failed: {Libc.Describe(errno)}"),
        };
    }

    /// <summary>Whether /proc/self/mountinfo lists <paramref name="mountPoint"/> as a mount point.</summary>
    public static bool IsMounted(string mountPoint) => FindMount(mountPoint) is not null;

    /// <summary>The file system type mounted at <paramref name="mountPoint"/>, or null.</summary>
    public static string? FindMount(string mountPoint)
    {
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
            var fields = line.Split(' ');
            if (fields.Length > 4 && Unescape(fields[4]) == mountPoint)
            {
                var separator = Array.IndexOf(fields, "-");
                return separator >= 0 && separator + 1 < fields.Length ? fields[separator + 1] : "unknown";
            }
        }

        return null;
    }

    /// <summary>The MAJ:MIN device of the file system mounted at <paramref name="mountPoint"/> (the topmost), or null.</summary>
    public static string? FindDevice(string mountPoint) =>
        File.ReadLines("/proc/self/mountinfo")
            .Select(l => l.Split(' '))
            .LastOrDefault(f => f.Length > 4 && Unescape(f[4]) == mountPoint)?[2];

    private static void CheckMountPoint(string mountPoint)
    {
        var statx = stackalloc byte[256];
        if (Libc.Statx(Libc.AtFdCwd, mountPoint, Libc.AtSymlinkNoFollow, Libc.StatxType, statx) != 0)
        {
            var errno = Libc.LastErrno;
            throw errno switch
            {
                Errno.ENOENT => new FuseMountException(mountPoint, errno,
                    $"mount point '{mountPoint}' does not exist: create the directory before mounting"),
                Errno.ENOTCONN => new FuseMountException(mountPoint, errno,
                    $"mount point '{mountPoint}' is a dead FUSE mount (transport endpoint is not connected): unmount it first with FuseSession.Unmount(path, lazy: true) or `umount -l {mountPoint}`"),
                _ => new FuseMountException(mountPoint, errno,
                    $"mount point '{mountPoint}' cannot be examined: {Libc.Describe(errno)}"),
            };
        }

        var mode = *(ushort*)(statx + 28);
        if ((mode & SIfMt) != SIfDir)
        {
            throw new FuseMountException(mountPoint, Errno.ENOTDIR,
                $"mount point '{mountPoint}' is not a directory: give an empty directory");
        }

        if (FindMount(mountPoint) is { } fstype)
        {
            throw new FuseMountException(mountPoint, Errno.EBUSY,
                $"mount point '{mountPoint}' is already mounted ({fstype}): unmount it first (FuseSession.Unmount(path, lazy: true) or `umount -l {mountPoint}`) or pick another directory");
        }
    }

    private static int MountDirect(FuseMountOptions options, string mountPoint, string fstype)
    {
        // O_CLOEXEC: a child that inherited the descriptor would keep a dead daemon's mount alive (trap 9).
        var fd = Libc.Open("/dev/fuse", Libc.ORdWr | Libc.OCloExec);
        if (fd < 0)
        {
            var errno = Libc.LastErrno;
            throw new FuseMountException(mountPoint, errno, errno == Errno.ENOENT
                ? "/dev/fuse does not exist: load the fuse module (modprobe fuse) or give the container the device"
                : $"opening /dev/fuse failed: {Libc.Describe(errno)}");
        }

        // The kernel requires fd, rootmode, user_id and group_id (reference 3.1 step 3).
        var data = new StringBuilder()
            .Append(CultureInfo.InvariantCulture, $"fd={fd},rootmode=40000,user_id={Libc.GetUid()},group_id={Libc.GetGid()}");
        if (options.DefaultPermissions)
        {
            data.Append(",default_permissions");
        }

        if (options.AllowOther)
        {
            data.Append(",allow_other");
        }

        var flags = Libc.MsNoSuid | Libc.MsNoDev | (options.ReadOnly ? 1UL : 0UL);
        if (Libc.Mount(options.FsName, mountPoint, fstype, flags, data.ToString()) != 0)
        {
            var errno = Libc.LastErrno;
            Libc.Close(fd);
            throw new FuseMountException(mountPoint, errno, errno switch
            {
                Errno.EBUSY => $"mounting FUSE on '{mountPoint}' failed: the mount point is busy; unmount what is there (`umount -l {mountPoint}`) or pick another directory",
                Errno.EPERM => $"mounting FUSE on '{mountPoint}' failed: not permitted (CAP_SYS_ADMIN is needed for mount(2); run as root or use fusermount3)",
                _ => $"mounting FUSE on '{mountPoint}' failed: {Libc.Describe(errno)} (errno {errno})",
            });
        }

        return fd;
    }

    /// <summary>
    /// fusermount3 protocol (reference 3.3): a socketpair, the child's end named by _FUSE_COMMFD,
    /// the mounted descriptor coming back as one SCM_RIGHTS message.
    /// </summary>
    private static int MountWithFusermount(FuseMountOptions options, string mountPoint)
    {
        var pair = stackalloc int[2];
        if (Libc.SocketPair(Libc.AfUnix, Libc.SockStream, 0, pair) != 0)
        {
            throw new FuseMountException(mountPoint, Libc.LastErrno, $"socketpair failed: {Libc.Describe(Libc.LastErrno)}");
        }

        int ours = pair[0], theirs = pair[1];
        try
        {
            // Only the child's end may be inherited.
            Libc.Fcntl(ours, Libc.FSetFd, Libc.FdCloExec);

            var mountOptions = new StringBuilder("nosuid,nodev,fsname=").Append(EscapeOption(options.FsName));
            if (!string.IsNullOrEmpty(options.Subtype))
            {
                mountOptions.Append(",subtype=").Append(EscapeOption(options.Subtype));
            }

            if (options.DefaultPermissions)
            {
                mountOptions.Append(",default_permissions");
            }

            if (options.AllowOther)
            {
                mountOptions.Append(",allow_other");
            }

            if (options.ReadOnly)
            {
                mountOptions.Append(",ro");
            }

            var start = new ProcessStartInfo(Fusermount)
            {
                UseShellExecute = false,
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            };
            start.ArgumentList.Add("-o");
            start.ArgumentList.Add(mountOptions.ToString());
            start.ArgumentList.Add("--");
            start.ArgumentList.Add(mountPoint);
            start.Environment["_FUSE_COMMFD"] = theirs.ToString(CultureInfo.InvariantCulture);

            Process process;
            try
            {
                process = Process.Start(start) ?? throw new FuseMountException(mountPoint, Errno.EIO, $"{Fusermount} did not start");
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new FuseMountException(mountPoint, Errno.ENOENT,
                    $"mounting '{mountPoint}' as an ordinary user needs {Fusermount} (apt-get install fuse3): {e.Message}");
            }

            using (process)
            {
                Libc.Close(theirs);
                theirs = -1;
                var stderr = process.StandardError.ReadToEndAsync();
                var fd = ReceiveFd(ours);
                process.WaitForExit();
                if (fd < 0)
                {
                    throw new FuseMountException(mountPoint, Errno.EIO,
                        $"{Fusermount} could not mount '{mountPoint}' (exit {process.ExitCode}): {stderr.GetAwaiter().GetResult().Trim()}");
                }

                return fd;
            }
        }
        finally
        {
            Libc.Close(ours);
            if (theirs >= 0)
            {
                Libc.Close(theirs);
            }
        }
    }

    /// <summary>recvmsg with room for one SCM_RIGHTS descriptor; -1 if the socket closed without one.</summary>
    private static int ReceiveFd(int socket)
    {
        byte dummy;
        var control = stackalloc byte[24]; // CMSG_SPACE(sizeof(int))
        var iov = new Libc.Iovec { Base = &dummy, Length = 1 };
        var message = new Libc.MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = 24 };
        nint n;
        do
        {
            n = Libc.RecvMsg(socket, &message, 0);
        }
        while (n < 0 && Libc.LastErrno == Errno.EINTR);

        if (n <= 0 || message.ControlLength < 20)
        {
            return -1;
        }

        var header = (Libc.CmsgHdr*)control;
        return header->Level == Libc.SolSocket && header->Type == Libc.ScmRights ? *(int*)(control + 16) : -1;
    }

    private static bool RunFusermountUnmount(string mountPoint, bool lazy)
    {
        var start = new ProcessStartInfo(Fusermount)
        {
            UseShellExecute = false,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add("-u");
        if (lazy)
        {
            start.ArgumentList.Add("-z");
        }

        start.ArgumentList.Add("--");
        start.ArgumentList.Add(mountPoint);
        using var process = Process.Start(start) ?? throw new FuseMountException(mountPoint, Errno.EIO, $"{Fusermount} did not start");
        var error = process.StandardError.ReadToEnd().Trim();
        process.WaitForExit();
        if (process.ExitCode == 0)
        {
            return true;
        }

        if (error.Contains("not mounted", StringComparison.Ordinal) || error.Contains("not found in", StringComparison.Ordinal))
        {
            return false;
        }

        throw new FuseMountException(mountPoint, Errno.EBUSY, $"{Fusermount} -u '{mountPoint}' failed: {error}");
    }

    /// <summary>fusermount3 splits -o at commas; a comma inside a value is written "\,".</summary>
    private static string EscapeOption(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace(",", "\\,", StringComparison.Ordinal);

    /// <summary>mountinfo writes space, tab, newline and backslash as \ooo octal.</summary>
    private static string Unescape(string field)
    {
        if (!field.Contains('\\', StringComparison.Ordinal))
        {
            return field;
        }

        var bytes = new List<byte>(field.Length);
        for (var i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && IsOctal(field, i + 1))
            {
                bytes.Add((byte)Convert.ToInt32(field.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(field[i].ToString()));
            }
        }

        return Encoding.UTF8.GetString([.. bytes]);
    }

    private static bool IsOctal(string s, int at) =>
        at + 3 <= s.Length && s[at] is >= '0' and <= '7' && s[at + 1] is >= '0' and <= '7' && s[at + 2] is >= '0' and <= '7';
}
