using System.Collections.Concurrent;
using System.Globalization;
using ParaFS.Fuse;
using ParaFS.Protocol.Mds;

namespace ParaFS.FuseAdapter;

/// <summary>
/// The caller of a kernel request as the MDS needs it: uid and gid from the request, and the
/// supplementary groups of the calling process from /proc/PID/status (cached briefly per pid).
/// </summary>
internal sealed class CallerGroups
{
    private static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(2);
    private readonly ConcurrentDictionary<uint, (uint[] Groups, long Expires)> _cache = new();

    public Caller For(FuseContext context)
    {
        var caller = new Caller { Uid = context.Uid, Gid = context.Gid, Pid = context.Pid };
        if (context.Uid != 0)
        {
            caller.Groups.AddRange(Groups(context.Pid));
        }

        return caller;
    }

    private uint[] Groups(uint pid)
    {
        if (_cache.TryGetValue(pid, out var cached) && cached.Expires > Environment.TickCount64)
        {
            return cached.Groups;
        }

        uint[] groups = [];
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("Groups:", StringComparison.Ordinal))
                {
                    groups = [.. line["Groups:".Length..].Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries).Select(g => uint.Parse(g, CultureInfo.InvariantCulture))];
                    break;
                }
            }
        }
        catch (IOException)
        {
            // The process is gone (or has no /proc entry): its primary gid is all we know.
        }

        if (_cache.Count > 4096)
        {
            _cache.Clear();
        }

        _cache[pid] = (groups, Environment.TickCount64 + (long)Lifetime.TotalMilliseconds);
        return groups;
    }
}
