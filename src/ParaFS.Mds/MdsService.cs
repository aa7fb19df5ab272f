using Google.Protobuf;
using ParaFS.Common;
using ParaFS.Mds.Namespace;
using ParaFS.Mds.Targets;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Mds;

/// <summary>
/// Maps MDS method ids to namespace and registry operations. The caller's uid, gid and groups come
/// in each request and are trusted, as NFS's AUTH_SYS trusts them (DESIGN.md: mutual
/// authentication with a cluster key comes later).
/// </summary>
internal static class MdsService
{
    private static readonly Caller Nobody = new() { Uid = 65534, Gid = 65534 };

    public static void Register(RpcDispatcher d, MdsServer mds)
    {
        var ns = mds.Namespace;
        static RequestContext Context(Caller? caller, RpcRequest request) => new(caller ?? Nobody, request.Connection, request.Replay);
        static ValueTask<RpcResult> Reply(IMessage message) => ValueTask.FromResult(new RpcResult(message));

        d.Register(Methods.MdsSession, SessionRequest.Parser, (r, q) => Reply(ns.AttachSession(r, q.Connection)));
        d.Register(Methods.MdsLookup, LookupRequest.Parser, async (r, q) => new RpcResult(await ns.LookupAsync(Context(r.Caller, q), (long)r.Parent, r.Name).ConfigureAwait(false)));
        d.Register(Methods.MdsGetAttr, GetAttrRequest.Parser, async (r, _) => new RpcResult(await ns.GetAttrAsync((long)r.Ino).ConfigureAwait(false)));
        d.Register(Methods.MdsSetAttr, SetAttrRequest.Parser, (r, q) => Once(mds, q, Context(r.Caller, q), AttrReply.Parser, c => ns.SetAttrAsync(c, r)));
        d.Register(Methods.MdsCreate, CreateRequest.Parser, (r, q) => Once(mds, q, Context(r.Caller, q), EntryReply.Parser, c => ns.CreateAsync(c, r),
            (c, reply) => ns.RestoreReplayedOpen(c, reply.Handle, (long)(reply.Attr?.Ino ?? 0), r.OpenFlags, reply.Layout?.Generation ?? 0)));
        d.Register(Methods.MdsReadlink, GetAttrRequest.Parser, async (r, _) => new RpcResult(new ReadlinkReply { Target = await ns.ReadlinkAsync((long)r.Ino).ConfigureAwait(false) }));
        d.Register(Methods.MdsLink, LinkRequest.Parser, (r, q) => Once(mds, q, Context(r.Caller, q), AttrReply.Parser, c => ns.LinkAsync(c, (long)r.Ino, (long)r.NewParent, r.NewName)));
        d.Register(Methods.MdsRemove, RemoveRequest.Parser, (r, q) => Once(mds, q, Context(r.Caller, q), RemoveReply.Parser, c => ns.RemoveAsync(c, (long)r.Parent, r.Name, r.Directory)));
        d.Register(Methods.MdsRename, RenameRequest.Parser, (r, q) => Once(mds, q, Context(r.Caller, q), c => ns.RenameAsync(c, r)));
        d.Register(Methods.MdsReaddir, ReaddirRequest.Parser, async (r, q) =>
            new RpcResult(await ns.ReaddirAsync(Context(r.Caller, q), (long)r.Ino, (long)r.Cookie, (int)Math.Max(1, r.Limit), r.Plus).ConfigureAwait(false)));
        d.Register(Methods.MdsSetXattr, XattrRequest.Parser, (r, q) => Once(mds, q, Context(r.Caller, q), c => ns.SetXattrAsync(c, (long)r.Ino, r.Name, r.Value.ToByteArray(), r.Flags)));
        d.Register(Methods.MdsGetXattr, XattrRequest.Parser, async (r, q) =>
            new RpcResult(new XattrReply { Value = ByteString.CopyFrom(await ns.GetXattrAsync(Context(r.Caller, q), (long)r.Ino, r.Name).ConfigureAwait(false)) }));
        d.Register(Methods.MdsListXattr, XattrRequest.Parser, async (r, q) =>
        {
            var reply = new XattrReply();
            reply.Names.AddRange(await ns.ListXattrAsync(Context(r.Caller, q), (long)r.Ino).ConfigureAwait(false));
            return new RpcResult(reply);
        });
        d.Register(Methods.MdsRemoveXattr, XattrRequest.Parser, (r, q) => Once(mds, q, Context(r.Caller, q), c => ns.RemoveXattrAsync(c, (long)r.Ino, r.Name)));
        d.Register(Methods.MdsOpen, OpenRequest.Parser, (r, q) => Once(mds, q, Context(r.Caller, q), OpenReply.Parser, c => ns.OpenAsync(c, (long)r.Ino, r.Flags),
            (c, reply) => ns.RestoreReplayedOpen(c, reply.Handle, (long)r.Ino, r.Flags, reply.Layout?.Generation ?? 0)));
        d.Register(Methods.MdsClose, CloseRequest.Parser, async (r, q) =>
        {
            await ns.CloseAsync(Context(null, q), r.Handle, r.Size).ConfigureAwait(false);
            return RpcResult.Empty;
        });
        d.Register(Methods.MdsReportSize, SizeReportRequest.Parser, async (r, q) =>
        {
            await ns.ReportSizesAsync(r.Reports, q.Connection).ConfigureAwait(false);
            return RpcResult.Empty;
        });
        d.Register(Methods.MdsSetStripe, SetStripeRequest.Parser, (r, q) =>
            Once(mds, q, Context(r.Caller, q), GetStripeReply.Parser, c => ns.SetStripeAsync(c, (long)r.Ino, r.Policy ?? new LayoutPolicy())));
        d.Register(Methods.MdsGetStripe, GetStripeRequest.Parser, async (r, _) => new RpcResult(await ns.GetStripeAsync((long)r.Ino).ConfigureAwait(false)));
        d.Register(Methods.MdsStatFs, StatFsRequest.Parser, async (_, _) =>
            new RpcResult(await ns.StatFsAsync(mds.Targets.All.Where(t => t.State == TargetState.Up).Select(t => (t.CapacityBytes, t.FreeBytes))).ConfigureAwait(false)));
        d.Register(Methods.MdsListTargets, StatFsRequest.Parser, (_, _) =>
        {
            var reply = new ListTargetsReply();
            reply.Targets.AddRange(mds.Targets.All.Select(t => TargetRegistry.ToInfo(t, mds.Targets.Usage(t.Id))));
            return Reply(reply);
        });
        d.Register(Methods.MdsMigrateBegin, MigrateRequest.Parser, async (r, q) =>
            new RpcResult(await ns.MigrateBeginAsync(Context(r.Caller, q), (long)r.Ino, r.Policy ?? new LayoutPolicy()).ConfigureAwait(false)));
        d.Register(Methods.MdsMigrateCommit, MigrateRequest.Parser, (r, q) =>
            Once(mds, q, Context(r.Caller, q), GetStripeReply.Parser, c => ns.MigrateCommitAsync(c, (long)r.Ino, r.Generation)));
        d.Register(Methods.MdsMigrateAbort, MigrateRequest.Parser, async (r, q) =>
            new RpcResult(await ns.MigrateAbortAsync(Context(r.Caller, q), (long)r.Ino).ConfigureAwait(false)));
        d.Register(Methods.MdsLayoutAck, LayoutAckRequest.Parser, async (r, q) =>
        {
            await ns.AcknowledgeLayoutAsync(Context(null, q), (long)r.Ino, r.Generation).ConfigureAwait(false);
            return RpcResult.Empty;
        });
        d.Register(Methods.MdsLayoutWait, LayoutWaitRequest.Parser, (r, _) => Reply(ns.LayoutWait((long)r.Ino, r.Generation)));
        d.Register(Methods.MdsListFiles, ListFilesRequest.Parser, async (r, _) =>
            new RpcResult(await ns.ListFilesAsync(r.AfterIno, (int)r.Limit, r.TargetId).ConfigureAwait(false)));
        d.Register(Methods.MdsLock, LockRequest.Parser, (r, q) => Reply(ns.SetLock(Context(null, q), r)));
        d.Register(Methods.MdsLockTest, LockRequest.Parser, (r, q) => Reply(ns.TestLock(Context(null, q), r)));
        d.Register(Methods.NamespaceCheck, NamespaceCheckRequest.Parser, async (r, q) =>
            new RpcResult(await ns.CheckNamespaceAsync(Context(r.Caller, q), r.Repair, (int)r.Limit).ConfigureAwait(false)));
        d.Register(Methods.ObjectBookkeeping, ObjectBookkeepingRequest.Parser, async (r, q) =>
            new RpcResult(await ns.ObjectBookkeepingAsync(Context(r.Caller, q), r.AfterDeletion, (int)r.Limit).ConfigureAwait(false)));
        d.Register(Methods.SetTargetState, SetTargetStateRequest.Parser, async (r, _) =>
        {
            if (r.Caller is null || r.Caller.Uid != 0)
            {
                throw new ParaFsException(Errno.EPERM, "only root may drain, retire or re-enable a target");
            }

            if (r.State is not (TargetState.Up or TargetState.Draining or TargetState.Retired))
            {
                throw new ParaFsException(Errno.EINVAL, $"a target can be set up, draining or retired, not {r.State}");
            }

            await mds.Targets.SetStateAsync((int)r.TargetId, r.State).ConfigureAwait(false);
            var target = mds.Targets.Find((int)r.TargetId)!;
            return new RpcResult(TargetRegistry.ToInfo(target, mds.Targets.Usage(target.Id)));
        });
        d.Register(Methods.RegisterTarget, RegisterTargetRequest.Parser, async (r, q) =>
        {
            if (q.Connection.PeerHello?.Role is not (PeerRole.Ost or PeerRole.Tool))
            {
                throw new ParaFsException(Errno.EPERM, "only an OST may register a target");
            }

            var target = await mds.Targets.RegisterAsync(r).ConfigureAwait(false);
            return new RpcResult(new RegisterTargetReply
            {
                TargetId = (uint)target.Id,
                FsId = mds.FileSystemId,
                FsName = mds.FileSystemName,
                HeartbeatIntervalMs = (uint)mds.HeartbeatInterval.TotalMilliseconds,
                State = target.State,
            });
        });
        d.Register(Methods.TargetHeartbeat, TargetHeartbeatRequest.Parser, async (r, _) =>
            new RpcResult(new TargetHeartbeatReply { State = await mds.Targets.HeartbeatAsync(r).ConfigureAwait(false) }));
    }

    /// <summary>A call a client may send again (it carries a replay tag): answered once, a retry from the recorded reply.</summary>
    private static async ValueTask<RpcResult> Once<TReply>(
        MdsServer mds, RpcRequest request, RequestContext context, MessageParser<TReply> parser, Func<RequestContext, Task<TReply>> run, Action<RequestContext, TReply>? replayed = null)
        where TReply : class, IMessage<TReply>
    {
        var ran = false;
        var reply = await mds.Namespace.RunOnceAsync(
            context,
            async c =>
            {
                ran = true;
                return await run(c).ConfigureAwait(false);
            },
            bytes => parser.ParseFrom(bytes),
            message => replayed?.Invoke(context, (TReply)message!)).ConfigureAwait(false);
        AfterOnce(mds, request, context, ran);
        return new RpcResult(reply);
    }

    /// <summary>The same, for a call that answers with no message (an empty one: the same bytes on the wire).</summary>
    private static ValueTask<RpcResult> Once(MdsServer mds, RpcRequest request, RequestContext context, Func<RequestContext, Task> run) =>
        Once(mds, request, context, Protocol.Ost.Empty.Parser, async c =>
        {
            await run(c).ConfigureAwait(false);
            return new Protocol.Ost.Empty();
        });

    /// <summary>
    /// Logs a call answered without running it, and applies the test hook <see cref="MdsOptions.LoseReply"/>
    /// (the call ran and committed, and its reply never leaves).
    /// </summary>
    private static void AfterOnce(MdsServer mds, RpcRequest request, RequestContext context, bool ran)
    {
        if (!ran && context.Replay is { } tag)
        {
            Log.CallReplayed(mds.Logger, request.Method, request.Connection.Peer, tag.Xid, tag.Slot);
        }

        if (ran && mds.Options.LoseReply?.Invoke(request.Method) == true)
        {
            request.Connection.Abort($"test hook: the reply to method {request.Method} is lost after its commit");
            throw new ParaFsException(Errno.ECONNRESET, "the reply was lost on purpose (test hook)");
        }
    }
}
