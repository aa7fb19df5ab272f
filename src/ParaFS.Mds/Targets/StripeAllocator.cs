using ParaFS.Common;
using ParaFS.Mds.Store;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Targets;

/// <summary>
/// Chooses the targets of a new file (DESIGN.md, "Layouts and striping"): within the pool, up
/// targets only, never two stripes of one file on one target, starting at a rotating index so
/// files spread evenly, and skipping targets far fuller than the others while the rest have room.
/// </summary>
public sealed class StripeAllocator(TargetRegistry targets)
{
    /// <summary>A target with less than this share of the pool's average free space is passed over while others can take the stripes.</summary>
    private const double LowFreeShare = 0.3;

    private int _rotor;

    /// <summary>The pool used when a policy names none: every pool.</summary>
    public const string AnyPool = "";

    public IReadOnlyList<TargetRecord> Choose(string pool, int stripeCount)
    {
        var candidates = targets.All
            .Where(t => t.State == TargetState.Up && (pool == AnyPool || t.Pool == pool))
            .ToList();
        if (candidates.Count == 0)
        {
            var known = targets.All.Where(t => pool == AnyPool || t.Pool == pool).ToList();
            var why = known.Count == 0
                ? $"no target is registered in pool '{pool}'"
                : $"all {known.Count} targets of pool '{pool}' are down, draining or retired";
            throw new ParaFsException(Errno.ENOSPC, $"cannot place a new file: {why}; start an OST with --pool {pool} or change the directory's layout (parafs setstripe -p)");
        }

        var count = stripeCount <= 0 ? candidates.Count : Math.Min(stripeCount, candidates.Count);
        var averageFree = candidates.Average(t => (double)t.FreeBytes);
        var roomy = candidates.Where(t => t.CapacityBytes == 0 || t.FreeBytes >= averageFree * LowFreeShare).ToList();
        var pickFrom = roomy.Count >= count ? roomy : candidates;

        var start = (int)((uint)Interlocked.Increment(ref _rotor) % (uint)pickFrom.Count);
        return [.. Enumerable.Range(0, count).Select(i => pickFrom[(start + i) % pickFrom.Count])];
    }

    /// <summary>The store counter object ids on a target come from.</summary>
    public static string ObjectCounter(int targetId) => $"objects/{targetId}";

    /// <summary>A layout for a new regular file under <paramref name="policy"/>, with fresh object ids.</summary>
    public Layout Allocate(LayoutPolicy policy, IStoreTransaction tx)
    {
        var chosen = Choose(policy.Pool, policy.StripeCount);
        var layout = new Layout { StripeSize = policy.StripeSize, StripeCount = (uint)chosen.Count, Pool = policy.Pool, Generation = 1 };
        foreach (var target in chosen)
        {
            layout.Objects.Add(new StripeObject { TargetId = (uint)target.Id, ObjectId = (ulong)tx.NextId(ObjectCounter(target.Id)) });
        }

        return layout;
    }
}
