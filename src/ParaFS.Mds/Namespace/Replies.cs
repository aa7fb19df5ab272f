using System.Collections.Concurrent;
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
/// A retry that arrives while the first call still runs waits for it and gets its outcome. Only a
/// call sent again (marked resent), or one this MDS has seen before, is looked up in the records:
/// a first send runs at once.
/// </summary>
public sealed partial class MdsNamespace
{
    /// <summary>How long a recorded reply is kept: far past the 30 s a client retries for.</summary>
    public static readonly TimeSpan ReplyRecordLifetime = TimeSpan.FromHours(1);

    /// <summary>What a call that answers with no message records (an empty message).</summary>
    private static readonly Protocol.Ost.Empty NoReply = new();

    private readonly ConcurrentDictionary<(ulong Client, uint Slot), RunningCall> _running = new();
    private readonly ConcurrentDictionary<(ulong Client, uint Slot), (ulong Xid, long AtMs)> _seen = new();
    private long _repliesReplayed;

    /// <summary>Retried calls answered from a recorded reply since the MDS started.</summary>
    public long RepliesReplayed => Interlocked.Read(ref _repliesReplayed);

    /// <summary>
    /// Runs a tagged call once: a retry of a call whose reply is recorded gets that reply (parsed
    /// by <paramref name="parse"/>, then passed to <paramref name="replayed"/>); a retry of a call
    /// still running gets its outcome; otherwise <paramref name="run"/> runs with the tag in its
    /// context. An untagged call just runs.
    /// </summary>
    public async Task<IMessage?> RunOnceAsync(RequestContext context, Func<RequestContext, Task<IMessage?>> run, Func<byte[], IMessage?> parse, Action<IMessage?>? replayed = null)
    {
        if (context.Replay is not { Client: not 0 } tag)
        {
            return await run(context).ConfigureAwait(false);
        }

        var key = (tag.Client, tag.Slot);
        var mine = new RunningCall(tag.Xid);
        while (!_running.TryAdd(key, mine))
        {
            if (!_running.TryGetValue(key, out var other))
            {
                continue;
            }

            if (other.Xid == tag.Xid)
            {
                return await other.Outcome.Task.ConfigureAwait(false);
            }

            if (other.Xid > tag.Xid)
            {
                throw Superseded(tag, other.Xid);
            }

            // An older call in this slot still runs here, but its client has given up on it.
            if (_running.TryUpdate(key, mine, other))
            {
                break;
            }
        }

        try
        {
            // The newest call this MDS has seen in the slot. A first send of a call it has already
            // seen (it sat in a queue while its client timed out and sent it again) is a copy too.
            var seen = _seen.TryGetValue(key, out var last) ? last.Xid : 0;
            if (seen > tag.Xid)
            {
                throw Superseded(tag, seen);
            }

            _seen[key] = (tag.Xid, Environment.TickCount64);
            IMessage? reply;
            var recorded = tag.Resent || seen == tag.Xid ? await _store.ReadAsync(tx => tx.FindReply(tag.Client, tag.Slot)).ConfigureAwait(false) : null;
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
            _ = mine.Outcome.Task.Exception; // observed: a retry waiting on it rethrows it, and none may come
            throw;
        }
        finally
        {
            _running.TryRemove(KeyValuePair.Create(key, mine));
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
        foreach (var (key, seen) in _seen)
        {
            if (seen.AtMs < before)
            {
                _seen.TryRemove(KeyValuePair.Create(key, seen));
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

    private sealed class RunningCall(ulong xid)
    {
        public ulong Xid { get; } = xid;

        public TaskCompletionSource<IMessage?> Outcome { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
