using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using ParaFS.Common;
using ParaFS.Mds.Store;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Targets;

/// <summary>
/// The targets the MDS knows: registration (assigns ids), heartbeats, and the up / down /
/// draining / retired states. The store keeps the registry; this class keeps the live view.
/// </summary>
public sealed class TargetRegistry
{
    private readonly IMetadataStore _store;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<int, TargetRecord> _targets = new();
    private readonly ConcurrentDictionary<int, TargetUsage> _usage = new();

    public TargetRegistry(IMetadataStore store, TimeSpan heartbeatInterval, ILogger logger)
    {
        _store = store;
        _logger = logger;
        HeartbeatInterval = heartbeatInterval;
    }

    public TimeSpan HeartbeatInterval { get; }

    /// <summary>A target that missed this many intervals of heartbeats is down.</summary>
    public static int MissedHeartbeatsForDown => 3;

    public IReadOnlyCollection<TargetRecord> All => [.. _targets.Values.OrderBy(t => t.Id)];

    public TargetRecord? Find(int id) => _targets.GetValueOrDefault(id);

    public TargetUsage? Usage(int id) => _usage.GetValueOrDefault(id);

    public async Task LoadAsync()
    {
        var now = NowMs();
        foreach (var target in await _store.ReadAsync(tx => tx.ListTargets()).ConfigureAwait(false))
        {
            // Until a target heartbeats to this MDS process it counts from now: a restarted MDS
            // does not declare every target down at once.
            _targets[target.Id] = target with { LastHeartbeatMs = Math.Max(target.LastHeartbeatMs, now) };
        }
    }

    public async Task<TargetRecord> RegisterAsync(RegisterTargetRequest request)
    {
        if (string.IsNullOrWhiteSpace(request.Pool))
        {
            throw new ParaFsException(Errno.EINVAL, "a target must name its pool");
        }

        var now = NowMs();
        var record = await _store.WriteAsync(tx =>
        {
            var existing = request.TargetId == 0 ? null : tx.ListTargets().FirstOrDefault(t => t.Id == request.TargetId);
            if (request.TargetId != 0 && existing is null)
            {
                throw new ParaFsException(Errno.ENOENT,
                    $"target {request.TargetId} is not registered with this MDS; its data directory belongs to another MDS database");
            }

            var id = existing?.Id ?? (int)tx.NextId("target");
            var state = existing?.State is TargetState.Draining or TargetState.Retired ? existing.State : TargetState.Up;
            var target = new TargetRecord
            {
                Id = id,
                Pool = request.Pool,
                Address = request.Address,
                Backend = request.Backend,
                State = state,
                CapacityBytes = (long)(request.Usage?.CapacityBytes ?? 0),
                FreeBytes = (long)(request.Usage?.FreeBytes ?? 0),
                Objects = (long)(request.Usage?.Objects ?? 0),
                RegisteredMs = existing?.RegisteredMs ?? now,
                LastHeartbeatMs = now,
            };
            tx.UpsertTarget(target);
            return target;
        }).ConfigureAwait(false);

        _targets[record.Id] = record;
        if (request.Usage is { } usage)
        {
            _usage[record.Id] = usage;
        }

        Log.TargetRegistered(_logger, record.Id, record.Pool, record.Address);
        return record;
    }

    public async Task<TargetState> HeartbeatAsync(TargetHeartbeatRequest request)
    {
        if (!_targets.TryGetValue((int)request.TargetId, out var target))
        {
            throw new ParaFsException(Errno.ENOENT, $"target {request.TargetId} is not registered; it must register again");
        }

        var updated = target with
        {
            Address = request.Address.Length > 0 ? request.Address : target.Address,
            CapacityBytes = (long)(request.Usage?.CapacityBytes ?? (ulong)target.CapacityBytes),
            FreeBytes = (long)(request.Usage?.FreeBytes ?? (ulong)target.FreeBytes),
            Objects = (long)(request.Usage?.Objects ?? (ulong)target.Objects),
            LastHeartbeatMs = NowMs(),
            State = target.State == TargetState.Down ? TargetState.Up : target.State,
        };
        _targets[updated.Id] = updated;
        if (request.Usage is { } usage)
        {
            _usage[updated.Id] = usage;
        }

        if (target.State == TargetState.Down || target.Address != updated.Address)
        {
            Log.TargetUp(_logger, updated.Id, updated.Address);
            await PersistAsync(updated).ConfigureAwait(false);
        }

        return updated.State;
    }

    /// <summary>Marks targets that stopped heartbeating as down. Called periodically.</summary>
    public async Task CheckHeartbeatsAsync()
    {
        var limit = NowMs() - (long)(HeartbeatInterval.TotalMilliseconds * MissedHeartbeatsForDown);
        foreach (var target in _targets.Values)
        {
            if (target.State == TargetState.Up && target.LastHeartbeatMs < limit)
            {
                var down = target with { State = TargetState.Down };
                _targets[down.Id] = down;
                Log.TargetDown(_logger, down.Id, down.Address, MissedHeartbeatsForDown);
                await PersistAsync(down).ConfigureAwait(false);
            }
        }
    }

    public async Task SetStateAsync(int id, TargetState state)
    {
        var target = Find(id) ?? throw new ParaFsException(Errno.ENOENT, $"no target {id}");
        var updated = target with { State = state };
        _targets[id] = updated;
        await PersistAsync(updated).ConfigureAwait(false);
    }

    public static TargetInfo ToInfo(TargetRecord t, TargetUsage? usage) => new()
    {
        TargetId = (uint)t.Id,
        Pool = t.Pool,
        Address = t.Address,
        Backend = t.Backend,
        State = t.State,
        Usage = usage ?? new TargetUsage { CapacityBytes = (ulong)t.CapacityBytes, FreeBytes = (ulong)t.FreeBytes, Objects = (ulong)t.Objects },
        LastHeartbeatMs = t.LastHeartbeatMs,
        RegisteredMs = t.RegisteredMs,
    };

    private Task PersistAsync(TargetRecord target) => _store.WriteAsync(tx =>
    {
        tx.UpsertTarget(target);
        return 0;
    });

    private static long NowMs() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
}
