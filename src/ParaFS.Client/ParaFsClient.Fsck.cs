using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Ost;

namespace ParaFS.Client;

/// <summary>The calls parafs fsck makes: the MDS's object bookkeeping and namespace check, and each target's own list of objects.</summary>
public sealed partial class ParaFsClient
{
    /// <summary>
    /// The MDS checks link counts, entries and reachability in one transaction; with
    /// <paramref name="repair"/> it sets link counts and directory parents to what the names bear
    /// out (harmless to repeat). Root only.
    /// </summary>
    public Task<NamespaceCheckReply> CheckNamespaceAsync(Caller caller, bool repair, int limit, CancellationToken cancellationToken = default) =>
        _mds.CallAsync(Methods.NamespaceCheck, new NamespaceCheckRequest { Caller = caller, Repair = repair, Limit = (uint)limit }, NamespaceCheckReply.Parser, idempotent: true, cancellationToken);

    /// <summary>A page of the MDS's deletion queue and the last object id handed out per target. Root only.</summary>
    public Task<ObjectBookkeepingReply> ObjectBookkeepingAsync(Caller caller, ulong afterDeletion, int limit, CancellationToken cancellationToken = default) =>
        _mds.CallAsync(Methods.ObjectBookkeeping, new ObjectBookkeepingRequest { Caller = caller, AfterDeletion = afterDeletion, Limit = (uint)limit }, ObjectBookkeepingReply.Parser, idempotent: true, cancellationToken);

    /// <summary>The ids of the objects a target holds, in order, from the first above <paramref name="after"/>.</summary>
    public async Task<ListReply> ListObjectsAsync(uint targetId, ulong after, int limit, CancellationToken cancellationToken = default)
    {
        using var reply = await _objects.CallAsync(targetId, Methods.OstList, new ListRequest { After = after, Limit = (uint)limit }, default, default, cancellationToken).ConfigureAwait(false);
        return reply.ParseMessage(ListReply.Parser);
    }

    /// <summary>Whether an object exists on its target, and its size.</summary>
    public async Task<ObjectAttr> GetObjectAttrAsync(uint targetId, ulong objectId, CancellationToken cancellationToken = default)
    {
        using var reply = await _objects.CallAsync(targetId, Methods.OstGetAttr, new ObjectRequest { ObjectId = objectId }, default, default, cancellationToken).ConfigureAwait(false);
        return reply.ParseMessage(ObjectAttr.Parser);
    }

    /// <summary>Deletes one object from its target (idempotent). Only for objects no layout refers to.</summary>
    public async Task DeleteObjectAsync(uint targetId, ulong objectId, CancellationToken cancellationToken = default)
    {
        using var reply = await _objects.CallAsync(targetId, Methods.OstDelete, new ObjectRequest { ObjectId = objectId }, default, default, cancellationToken).ConfigureAwait(false);
    }
}
