using ParaFS.Common;
using ParaFS.Ost.Backends.Block;
using ParaFS.Ost.Backends.Dir;

namespace ParaFS.Ost.Backends;

/// <summary>
/// Where a target keeps its objects, as `parafs ost --backend` names it:
/// <c>dir</c> or <c>dir:PATH</c> (files under a directory), <c>block:PATH</c> (a file or block
/// device, O_DIRECT), or <c>nvme-tcp://HOST:PORT/NQN[/NSID]</c> (a namespace reached through
/// ParaFS's own NVMe/TCP host).
/// </summary>
public sealed record BackendSpec(string Kind, string Location)
{
    public const string NvmeTcp = "nvme-tcp";

    public bool IsDirectory => Kind == DirBackend.BackendName;

    public static BackendSpec Parse(string text, string? dataDirectory = null)
    {
        if (text == DirBackend.BackendName)
        {
            return new BackendSpec(DirBackend.BackendName, dataDirectory ?? throw new ParaFsException(Errno.EINVAL, "the dir backend needs a data directory (--data DIR or --backend dir:DIR)"));
        }

        if (text.StartsWith("dir:", StringComparison.Ordinal) && text.Length > 4)
        {
            return new BackendSpec(DirBackend.BackendName, text[4..]);
        }

        if (text.StartsWith("block:", StringComparison.Ordinal) && text.Length > 6)
        {
            return new BackendSpec(BlockBackend.BackendName, text[6..]);
        }

        if (text.StartsWith(NvmeTcp + "://", StringComparison.Ordinal))
        {
            return new BackendSpec(NvmeTcp, text);
        }

        throw new ParaFsException(Errno.EINVAL, $"--backend {text} is not one of dir, dir:PATH, block:PATH (a file or block device), nvme-tcp://HOST:PORT/NQN[/NSID]");
    }
}
