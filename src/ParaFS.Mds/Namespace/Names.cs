using System.Text;
using ParaFS.Common;

namespace ParaFS.Mds.Namespace;

/// <summary>What a directory entry name may be (POSIX: no '/' or NUL; NAME_MAX 255 bytes).</summary>
public static class Names
{
    public const int MaxBytes = 255;

    public static void Check(string name)
    {
        if (name.Length == 0)
        {
            throw new ParaFsException(Errno.ENOENT, "an empty name names nothing");
        }

        if (name.Contains('/', StringComparison.Ordinal) || name.Contains('\0', StringComparison.Ordinal))
        {
            throw new ParaFsException(Errno.EINVAL, $"the name '{name.Replace("\0", "\\0", StringComparison.Ordinal)}' contains '/' or NUL");
        }

        if (Encoding.UTF8.GetByteCount(name) > MaxBytes)
        {
            throw new ParaFsException(Errno.ENAMETOOLONG, $"the name '{name[..32]}...' is longer than {MaxBytes} bytes");
        }
    }

    /// <summary>For calls that create or remove a name: "." and ".." are not entries the MDS keeps.</summary>
    public static void CheckNew(string name)
    {
        Check(name);
        if (name is "." or "..")
        {
            throw new ParaFsException(Errno.EINVAL, $"'{name}' cannot be created, removed or renamed");
        }
    }
}
