namespace ParaFS.Fuse;

/// <summary>Mounting or unmounting failed; the message names the mount point and what to do about it.</summary>
public sealed class FuseMountException : IOException
{
    public FuseMountException(string mountPoint, int errno, string message)
        : base(message)
    {
        MountPoint = mountPoint;
        Errno = errno;
    }

    public FuseMountException()
    {
        MountPoint = string.Empty;
    }

    public FuseMountException(string message)
        : base(message)
    {
        MountPoint = string.Empty;
    }

    public FuseMountException(string message, Exception innerException)
        : base(message, innerException)
    {
        MountPoint = string.Empty;
    }

    /// <summary>The mount point concerned.</summary>
    public string MountPoint { get; }

    /// <summary>The errno behind the failure (ENOENT, ENOTDIR, EBUSY, EPERM...), 0 if none.</summary>
    public int Errno { get; }
}
