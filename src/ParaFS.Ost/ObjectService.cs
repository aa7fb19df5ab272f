using ParaFS.Common;
using ParaFS.Ost.Backends;
using ParaFS.Protocol;
using ParaFS.Protocol.Ost;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Ost;

/// <summary>
/// The object methods (ost.proto, 300-309): checks each request, calls the backend, counts and
/// times it. Read replies carry their bytes in a pooled buffer the RPC layer returns once sent, or
/// (large reads on a bulk connection from a dir target) as a range of the object's file.
/// </summary>
internal sealed class ObjectService(OstMetrics metrics, int maxReadBytes)
{
    private const int DefaultListLimit = 1000;
    private const int MaxListLimit = 100_000;

    private volatile Attached? _attached;

    /// <summary>Starts serving objects; until then every call is answered EAGAIN.</summary>
    public void Attach(IObjectBackend backend, Superblock superblock) => _attached = new Attached(backend, superblock);

    public void Register(RpcDispatcher dispatcher)
    {
        dispatcher.Register(Methods.OstWrite, WriteRequest.Parser, Measured<WriteRequest>("write", WriteAsync));
        dispatcher.Register(Methods.OstRead, ReadRequest.Parser, Measured<ReadRequest>("read", ReadAsync));
        dispatcher.Register(Methods.OstPunch, PunchRequest.Parser, Measured<PunchRequest>("punch", PunchAsync));
        dispatcher.Register(Methods.OstTruncate, TruncateRequest.Parser, Measured<TruncateRequest>("truncate", TruncateAsync));
        dispatcher.Register(Methods.OstGetAttr, ObjectRequest.Parser, Measured<ObjectRequest>("getattr", GetAttrAsync));
        dispatcher.Register(Methods.OstDelete, ObjectRequest.Parser, Measured<ObjectRequest>("delete", DeleteAsync));
        dispatcher.Register(Methods.OstSync, SyncRequest.Parser, Measured<SyncRequest>("sync", SyncAsync));
        dispatcher.Register(Methods.OstList, ListRequest.Parser, Measured<ListRequest>("list", ListAsync));
        dispatcher.Register(Methods.OstStatFs, Empty.Parser, Measured<Empty>("statfs", StatFs));
        dispatcher.Register(Methods.OstSeek, SeekRequest.Parser, Measured<SeekRequest>("seek", SeekAsync));
    }

    private Func<T, RpcRequest, ValueTask<RpcResult>> Measured<T>(string operation, Func<T, RpcRequest, Attached, ValueTask<RpcResult>> handler) =>
        async (message, call) =>
        {
            var started = metrics.Start();
            var failed = true;
            try
            {
                var attached = _attached ?? throw new ParaFsException(Errno.EAGAIN,
                    "this OST is not registered with its MDS yet (a first start formats its data directory then); retry shortly");
                var result = await handler(message, call, attached).ConfigureAwait(false);
                failed = false;
                return result;
            }
            finally
            {
                metrics.End(operation, started, failed);
            }
        };

    private async ValueTask<RpcResult> WriteAsync(WriteRequest request, RpcRequest call, Attached target)
    {
        var offset = ObjectBounds.CheckRange(request.ObjectId, "write", request.Offset, (ulong)call.Payload.Length);
        var size = await target.Backend.WriteAsync(request.ObjectId, offset, call.Payload, call.Aborted).ConfigureAwait(false);
        metrics.Written(call.Payload.Length);
        return new RpcResult(new WriteReply { ObjectSize = (ulong)size });
    }

    /// <summary>
    /// Reads at least this large, on a bulk connection, from a backend of files, are sent from the
    /// object's file (sendfile): its cached pages go to the socket without two copies through a
    /// buffer here.
    /// </summary>
    private const long FilePayloadBytes = 64 * 1024;

    private async ValueTask<RpcResult> ReadAsync(ReadRequest request, RpcRequest call, Attached target)
    {
        var offset = ObjectBounds.CheckRange(request.ObjectId, "read", request.Offset, request.Length);
        if (request.Length > maxReadBytes)
        {
            throw new ParaFsException(Errno.EINVAL,
                $"read of object {request.ObjectId}: length {request.Length} is over the largest read of {maxReadBytes} bytes; split it");
        }

        if (request.Length >= FilePayloadBytes && call.Connection.IsDedicated && target.Backend is IFileObjectBackend files)
        {
            var range = files.OpenRange(request.ObjectId, offset, (int)request.Length);
            metrics.Read(range.Payload?.Length ?? 0);
            var found = new ReadReply { ObjectSize = (ulong)range.ObjectSize, Exists = range.Exists };
            return new RpcResult(found, PayloadFile: range.Payload);
        }

        var buffer = RpcBuffer.Rent((int)request.Length);
        try
        {
            var read = await target.Backend.ReadAsync(request.ObjectId, offset, buffer.Memory, call.Aborted).ConfigureAwait(false);
            metrics.Read(read.BytesRead);
            var reply = new ReadReply { ObjectSize = (ulong)read.ObjectSize, Exists = read.Exists };
            if (read.BytesRead == 0)
            {
                buffer.Dispose();
                return new RpcResult(reply);
            }

            return new RpcResult(reply, buffer.Memory[..read.BytesRead], buffer);
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }

    private static async ValueTask<RpcResult> PunchAsync(PunchRequest request, RpcRequest call, Attached target)
    {
        var offset = ObjectBounds.CheckRange(request.ObjectId, "punch", request.Offset, request.Length);
        await target.Backend.PunchAsync(request.ObjectId, offset, (long)request.Length, call.Aborted).ConfigureAwait(false);
        return new RpcResult(new Empty());
    }

    private static async ValueTask<RpcResult> TruncateAsync(TruncateRequest request, RpcRequest call, Attached target)
    {
        var size = ObjectBounds.CheckSize(request.ObjectId, request.Size);
        await target.Backend.TruncateAsync(request.ObjectId, size, call.Aborted).ConfigureAwait(false);
        return new RpcResult(new Empty());
    }

    private static async ValueTask<RpcResult> GetAttrAsync(ObjectRequest request, RpcRequest call, Attached target)
    {
        var attributes = await target.Backend.GetAttributesAsync(request.ObjectId, call.Aborted).ConfigureAwait(false);
        return new RpcResult(new ObjectAttr
        {
            ObjectId = request.ObjectId,
            Exists = attributes.Exists,
            Size = (ulong)attributes.Size,
            AllocatedBytes = (ulong)attributes.AllocatedBytes,
        });
    }

    private static async ValueTask<RpcResult> SeekAsync(SeekRequest request, RpcRequest call, Attached target)
    {
        var offset = ObjectBounds.CheckRange(request.ObjectId, "seek", request.Offset, 0);
        var found = await target.Backend.SeekAsync(request.ObjectId, offset, request.Hole, call.Aborted).ConfigureAwait(false);
        return new RpcResult(new SeekReply { Found = found.Offset.HasValue, Offset = (ulong)(found.Offset ?? 0), ObjectSize = (ulong)found.ObjectSize });
    }

    private static async ValueTask<RpcResult> DeleteAsync(ObjectRequest request, RpcRequest call, Attached target)
    {
        await target.Backend.DeleteAsync(request.ObjectId, call.Aborted).ConfigureAwait(false);
        return new RpcResult(new Empty());
    }

    private static async ValueTask<RpcResult> SyncAsync(SyncRequest request, RpcRequest call, Attached target)
    {
        await target.Backend.SyncAsync(request.ObjectIds, call.Aborted).ConfigureAwait(false);
        return new RpcResult(new Empty());
    }

    private static async ValueTask<RpcResult> ListAsync(ListRequest request, RpcRequest call, Attached target)
    {
        var limit = request.Limit == 0 ? DefaultListLimit : (int)Math.Min(request.Limit, MaxListLimit);
        var page = await target.Backend.ListAsync(request.After, limit, call.Aborted).ConfigureAwait(false);
        var reply = new ListReply { More = page.More };
        reply.ObjectIds.AddRange(page.ObjectIds);
        return new RpcResult(reply);
    }

    private static ValueTask<RpcResult> StatFs(Empty request, RpcRequest call, Attached target)
    {
        var usage = target.Backend.GetUsage();
        return ValueTask.FromResult(new RpcResult(new StatFsReply
        {
            CapacityBytes = (ulong)usage.CapacityBytes,
            FreeBytes = (ulong)usage.FreeBytes,
            Objects = (ulong)usage.Objects,
            TargetId = target.Superblock.TargetId,
            Pool = target.Superblock.Pool,
        }));
    }

    private sealed record Attached(IObjectBackend Backend, Superblock Superblock);
}
