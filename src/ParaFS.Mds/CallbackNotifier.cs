using Google.Protobuf;
using Microsoft.Extensions.Logging;
using ParaFS.Mds.Namespace;
using ParaFS.Mds.Sessions;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Mds;

/// <summary>
/// Pushes "entry changed", "attributes changed" and "layout changed" to every client session but
/// the one that caused the change, and "lock released" to the sessions waiting for one. Delivery
/// is best effort: caches also expire on their own, and lock waiters also ask again on their own.
/// </summary>
public sealed class CallbackNotifier(SessionTable sessions, ILogger logger) : INotifier
{
    public void EntryChanged(long parent, string name, RpcServerConnection? origin) =>
        Push(Methods.PushEntryChanged, new EntryChanged { Parent = (ulong)parent, Name = name }, origin);

    public void AttrChanged(long ino, RpcServerConnection? origin) =>
        Push(Methods.PushAttrChanged, new AttrChanged { Ino = (ulong)ino }, origin);

    public void LayoutChanged(long ino, ulong generation, RpcServerConnection? origin) =>
        Push(Methods.PushLayoutChanged, new LayoutChanged { Ino = (ulong)ino, Generation = generation }, origin, originToo: true);

    public void LayoutChanged(long ino, ulong generation, IEnumerable<ClientSession> to)
    {
        var message = new LayoutChanged { Ino = (ulong)ino, Generation = generation };
        foreach (var connection in to.Select(s => s.Connection).OfType<RpcServerConnection>().Where(c => !c.IsClosed))
        {
            _ = SendAsync(connection, Methods.PushLayoutChanged, message);
        }
    }

    public void LockReleased(long ino, IEnumerable<ulong> to)
    {
        var message = new LockReleased { Ino = (ulong)ino };
        foreach (var connection in to.Select(sessions.ConnectionOf).OfType<RpcServerConnection>())
        {
            _ = SendAsync(connection, Methods.PushLockReleased, message);
        }
    }

    private void Push(uint method, IMessage message, RpcServerConnection? origin, bool originToo = false)
    {
        foreach (var connection in sessions.Connections(origin, originToo))
        {
            _ = SendAsync(connection, method, message);
        }
    }

    private async Task SendAsync(RpcServerConnection connection, uint method, IMessage message)
    {
        try
        {
            await connection.PushAsync(method, message).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            Log.CallbackFailed(logger, method, connection.Peer, e.Message);
        }
    }
}
