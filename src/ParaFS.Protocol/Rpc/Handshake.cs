using ParaFS.Common;

namespace ParaFS.Protocol.Rpc;

/// <summary>The server's side of the handshake: which peers it accepts, and what it tells those it refuses.</summary>
public static class Handshake
{
    public static string RoleName(PeerRole role) => role switch
    {
        PeerRole.Client => "client",
        PeerRole.Mds => "MDS",
        PeerRole.Ost => "OST",
        PeerRole.Tool => "tool",
        _ => "server",
    };

    /// <summary>Null when the peer is accepted; otherwise the error it is told before the connection closes.</summary>
    public static RpcError? Check(Hello hello, PeerRole serverRole, string fileSystemId, string fileSystemName)
    {
        if (hello.ProtocolVersion < ProtocolVersion.MinimumSupported || hello.MinProtocolVersion > ProtocolVersion.Current)
        {
            return new RpcError
            {
                Errno = (int)Errno.EPROTO,
                Message = $"protocol version mismatch: the peer speaks versions {hello.MinProtocolVersion}..{hello.ProtocolVersion}, "
                    + $"this {RoleName(serverRole)} speaks {ProtocolVersion.MinimumSupported}..{ProtocolVersion.Current}; upgrade the older side",
            };
        }

        if (hello.FsId.Length > 0 && fileSystemId.Length > 0 && hello.FsId != fileSystemId)
        {
            var name = fileSystemName.Length > 0 ? $" ({fileSystemName})" : "";
            return new RpcError
            {
                Errno = (int)Errno.EPROTO,
                Message = $"this {RoleName(serverRole)} belongs to file system {fileSystemId}{name}, not {hello.FsId}; check the address you connected to",
            };
        }

        return null;
    }

    /// <summary>The version both sides speak.</summary>
    public static uint Negotiate(Hello hello) => Math.Min(hello.ProtocolVersion, ProtocolVersion.Current);
}
