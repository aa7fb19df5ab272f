using Google.Protobuf;
using ParaFS.Common;
using ParaFS.Mds.Sessions;
using ParaFS.Mds.Store;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Mds.Namespace;

/// <summary>
/// Retried calls. A client sends a call that is not harmless to repeat (create, link, unlink,
/// rename, a shrinking truncate, ...) with a <see cref="ReplayTag"/>: its own random id, a slot
/// and a number. The transaction that makes the call's changes also records its reply in that
/// slot. When the connection breaks before the reply arrives, or the MDS restarts or fails over
/// after the commit, the client sends the same call again, and the MDS answers from the record
/// instead of running it a second time (which would fail with EEXIST or ENOENT, or rename twice).
/// The MDS also keeps each slot's last call in memory: a copy that arrives while it still runs
/// waits for it, and a copy after it gets its outcome. Only a resent call this MDS has not seen
/// is looked up in the records (it started before a restart or failover): a first send runs at once.
/// </summary>
public sealed partial class MdsNamespace
{
    /// <summary>How long a recorded reply is kept: far past the 30 s a client retries for.</summary>
    public static readonly TimeSpan ReplyRecordLifetime = TimeSpan.FromHours(1);

    /// <summary>What a call that answers with no message records (an empty message).</summary>
    private static readonly Protocol.Ost.Empty NoReply = new();

    /// <summary>The last call this MDS started in each client slot, running or done (its outcome kept for copies of it).</summary>
    private readonly Dictionary<(ulong Client, uint Slot), SlotCall> _slots = [];
    private long _repliesReplayed;

    /// <summary>Copies of calls answered without running them (from memory or from a record) since the MDS started.</summary>
    public long RepliesReplayed => Interlocked.Read(ref _repliesReplayed);

    /// <summary>
    /// Runs a tagged call once: a copy of the slot's last call gets that call's outcome (waiting
    /// while it runs); a resent call this MDS has not seen (it started before a restart or on
    /// another MDS) gets its recorded reply, parsed by <paramref name="parse"/> and passed to
    /// <paramref name="replayed"/>; otherwise <paramref name="run"/> runs with the tag in its
    /// context. A call older than the slot's last one is refused. An untagged call just runs.
    /// </summary>
    public async Task<IMessage?> RunOnceAsync(RequestContext context, Func<RequestContext, Task<IMessage?>> run, Func<byte[], IMessage?> parse, Action<IMessage?>? replayed = null)
    {
        if (context.Replay is not { Client: not 0 } tag)
        {
            return await run(context).ConfigureAwait(false);
        }

        var key = (tag.Client, tag.Slot);
        var mine = new SlotCall(tag.Xid);
        SlotCall? earlier = null;
        lock (_slots)
        {
            if (_slots.TryGetValue(key, out var last) && last.Xid >= tag.Xid)
            {
                earlier = last.Xid == tag.Xid ? last : throw Superseded(tag, last.Xid);
            }
            else
            {
                // A call still running in this slot with a lower number was given up by its client.
                _slots[key] = mine;
            }
        }

        if (earlier is not null)
        {
            // A copy of a call that sat in a queue, or a retry while the first still runs or after it ended.
            Interlocked.Increment(ref _repliesReplayed);
            return await earlier.Outcome.Task.ConfigureAwait(false);
        }

        try
        {
            IMessage? reply;
            var recorded = tag.Resent ? await _store.ReadAsync(tx => tx.FindReply(tag.Client, tag.Slot)).ConfigureAwait(false) : null;
            if (recorded is not null && recorded.Xid == tag.Xid)
            {
                reply = parse(recorded.Reply);
                replayed?.Invoke(reply);
                Interlocked.Increment(ref _repliesReplayed);
            }
            else if (recorded is not null && recorded.Xid > tag.Xid)
            {
                throw Superseded(tag, recorded.Xid);
            }
            else
            {
                reply = await run(context).ConfigureAwait(false);
            }

            mine.Outcome.TrySetResult(reply);
            return reply;
        }
        catch (Exception e)
        {
            mine.Outcome.TrySetException(e);
            _ = mine.Outcome.Task.Exception; // observed: a copy waiting on it rethrows it, and none may come
            throw;
        }
    }

    /// <summary>
    /// A replayed create or open answered with a handle: the handle lives in the MDS's memory, so
    /// after a restart it is registered again in the caller's session, as a reattach would have.
    /// </summary>
    public void RestoreReplayedOpen(RequestContext context, ulong handle, long ino, uint flags, ulong layoutGeneration)
    {
        if (handle != 0 && context.Session is { } session)
        {
            _sessions.RestoreOpen(session, new OpenFile(handle, ino, flags, session.Id), layoutGeneration);
        }
    }

    /// <summary>Forgets reply records older than <see cref="ReplyRecordLifetime"/>; returns how many went.</summary>
    public Task<int> ForgetOldRepliesAsync()
    {
        var before = Environment.TickCount64 - (long)ReplyRecordLifetime.TotalMilliseconds;
        lock (_slots)
        {
            foreach (var (key, call) in _slots.Where(s => s.Value.StartedMs < before && s.Value.Outcome.Task.IsCompleted).ToList())
            {
                _slots.Remove(key);
            }
        }

        return _store.WriteAsync(tx => tx.ForgetReplies(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - (long)ReplyRecordLifetime.TotalMilliseconds));
    }

    /// <summary>
    /// An operation's last write transaction. With a tagged call, the reply <paramref name="reply"/>
    /// picks from the result is recorded in the same transaction (null records nothing).
    /// </summary>
    private Task<T> CommitAsync<T>(RequestContext context, Func<IStoreTransaction, T> work, Func<T, IMessage?> reply)
    {
        if (context.Replay is not { Client: not 0 } tag)
        {
            return _store.WriteAsync(work);
        }

        return _store.WriteAsync(tx =>
        {
            var result = work(tx);
            if (reply(result) is { } message)
            {
                tx.RecordReply(tag.Client, tag.Slot, tag.Xid, message.ToByteArray());
            }

            return result;
        });
    }

    private static ParaFsException Superseded(ReplayTag tag, ulong newer) => new(Errno.EIO,
        $"call {tag.Xid} of client {tag.Client:x16} in slot {tag.Slot} was given up by its client (call {newer} has used the slot since); it is not run again");

    private sealed class SlotCall(ulong xid)
    {
        public ulong Xid { get; } = xid;

        public long StartedMs { get; } = Environment.TickCount64;

        public TaskCompletionSource<IMessage?> Outcome { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
