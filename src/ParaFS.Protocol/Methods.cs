namespace ParaFS.Protocol;

/// <summary>
/// Every method id of the ParaFS protocol, declared once. An id is never reused: a retired method
/// keeps its number, commented out. Ranges: 0-99 the RPC layer, 100-199 the MDS namespace,
/// 200-209 target registration, 210-299 other MDS calls, 300-349 the OSTs, 400-499 pushes from
/// the MDS to clients.
/// </summary>
public static class Methods
{
    /// <summary>The first call on every connection: <see cref="Rpc.Hello"/> -> <see cref="Rpc.HelloReply"/>.</summary>
    public const uint Handshake = 0;

    /// <summary>An empty call answered by the RPC layer itself: liveness and round-trip time.</summary>
    public const uint Ping = 1;

    // Namespace (served by the MDS; messages in mds.proto).
    public const uint MdsSession = 100;
    public const uint MdsLookup = 101;
    public const uint MdsGetAttr = 102;
    public const uint MdsSetAttr = 103;
    public const uint MdsCreate = 104;
    public const uint MdsReadlink = 105;
    public const uint MdsLink = 106;
    public const uint MdsRemove = 107;
    public const uint MdsRename = 108;
    public const uint MdsReaddir = 109;
    public const uint MdsSetXattr = 110;
    public const uint MdsGetXattr = 111;
    public const uint MdsListXattr = 112;
    public const uint MdsRemoveXattr = 113;
    public const uint MdsOpen = 114;
    public const uint MdsClose = 115;
    public const uint MdsReportSize = 116;
    public const uint MdsSetStripe = 117;
    public const uint MdsGetStripe = 118;
    public const uint MdsStatFs = 119;
    public const uint MdsListTargets = 120;
    public const uint MdsMigrateBegin = 121;
    public const uint MdsMigrateCommit = 122;
    public const uint MdsMigrateAbort = 123;
    public const uint MdsLayoutAck = 124;
    public const uint MdsLayoutWait = 125;
    public const uint MdsListFiles = 126;

    /// <summary>Takes or gives back an advisory lock (fcntl or flock); an MDS without locks answers ENOSYS.</summary>
    public const uint MdsLock = 127;

    /// <summary>Which lock, if any, would stand in the way of a request (F_GETLK).</summary>
    public const uint MdsLockTest = 128;

    // Target registration (served by the MDS; messages in targets.proto).
    public const uint RegisterTarget = 200;
    public const uint TargetHeartbeat = 201;

    // Other MDS calls.
    public const uint SetTargetState = 210;

    /// <summary>parafs fsck's view of the MDS's object bookkeeping: the deletion queue and the object id counters.</summary>
    public const uint ObjectBookkeeping = 211;

    /// <summary>parafs fsck's namespace check: link counts, entries and reachability, in one transaction (NamespaceCheckRequest).</summary>
    public const uint NamespaceCheck = 212;

    // Object operations (served by an OST; messages in ost.proto).
    public const uint OstWrite = 300;
    public const uint OstRead = 301;
    public const uint OstPunch = 302;
    public const uint OstTruncate = 303;
    public const uint OstGetAttr = 304;
    public const uint OstDelete = 305;
    public const uint OstSync = 306;
    public const uint OstList = 307;
    public const uint OstStatFs = 308;

    /// <summary>SEEK_DATA / SEEK_HOLE within one object (SeekRequest -> SeekReply); an older OST answers ENOSYS.</summary>
    public const uint OstSeek = 309;

    // Pushes from the MDS to clients (no reply; messages in mds.proto).
    public const uint PushEntryChanged = 400;
    public const uint PushAttrChanged = 401;
    public const uint PushLayoutChanged = 402;
    public const uint PushLockReleased = 403;
}
