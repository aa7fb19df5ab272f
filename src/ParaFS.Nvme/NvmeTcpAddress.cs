using System.Globalization;

namespace ParaFS.Nvme;

/// <summary>
/// Where a namespace is: <c>nvme-tcp://HOST:PORT/SUBSYSTEM-NQN[/NSID][?option=value&amp;...]</c>.
/// PORT defaults to 4420; no NSID means the first active namespace. Options (all optional):
/// <c>queues</c>, <c>depth</c>, <c>digest</c> (none, header, data, both), <c>timeout</c> (command
/// timeout, seconds), <c>connect-timeout</c> (seconds), <c>kato</c> (keep-alive timeout, seconds,
/// 0 = off), <c>max-transfer</c> (bytes), <c>hostnqn</c>, <c>sqflow</c> (1 keeps SQ flow control on),
/// <c>min-size</c> (bytes: a smaller namespace is refused with ENOSPC).
/// </summary>
public sealed record NvmeTcpAddress(string Host, int Port, string SubsystemNqn, uint? NamespaceId)
{
    public const string Scheme = "nvme-tcp://";

    public override string ToString() =>
        $"{Scheme}{(Host.Contains(':') ? $"[{Host}]" : Host)}:{Port}/{SubsystemNqn}{(NamespaceId is { } nsid ? $"/{nsid}" : "")}";

    public static bool IsNvmeTcpUrl(string value) => value.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase);

    /// <summary>Parses the URL; options in its query string override <paramref name="defaults"/>.</summary>
    public static (NvmeTcpAddress Address, NvmeTcpOptions Options) Parse(string url, NvmeTcpOptions? defaults = null)
    {
        if (!IsNvmeTcpUrl(url))
        {
            throw new FormatException($"'{url}' is not an nvme-tcp:// URL (nvme-tcp://HOST:PORT/NQN[/NSID])");
        }
        var rest = url[Scheme.Length..];
        var query = "";
        var q = rest.IndexOf('?');
        if (q >= 0)
        {
            query = rest[(q + 1)..];
            rest = rest[..q];
        }
        var slash = rest.IndexOf('/');
        if (slash <= 0 || slash == rest.Length - 1)
        {
            throw new FormatException($"'{url}': expected nvme-tcp://HOST:PORT/NQN[/NSID]");
        }
        var authority = rest[..slash];
        var path = rest[(slash + 1)..].TrimEnd('/');
        string host;
        var port = 4420;
        if (authority.StartsWith('['))
        {
            var close = authority.IndexOf(']');
            if (close < 0)
            {
                throw new FormatException($"'{url}': unterminated IPv6 address");
            }
            host = authority[1..close];
            if (close + 1 < authority.Length)
            {
                port = ParsePort(url, authority[(close + 1)..].TrimStart(':'));
            }
        }
        else
        {
            var colon = authority.LastIndexOf(':');
            host = colon < 0 ? authority : authority[..colon];
            if (colon >= 0)
            {
                port = ParsePort(url, authority[(colon + 1)..]);
            }
        }
        uint? nsid = null;
        var lastSlash = path.LastIndexOf('/');
        if (lastSlash > 0 && uint.TryParse(path[(lastSlash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            if (id == 0 || id == 0xFFFFFFFF)
            {
                throw new FormatException($"'{url}': namespace id {id} is not a valid NSID");
            }
            nsid = id;
            path = path[..lastSlash];
        }
        if (host.Length == 0 || path.Length == 0)
        {
            throw new FormatException($"'{url}': expected nvme-tcp://HOST:PORT/NQN[/NSID]");
        }
        var options = defaults ?? new NvmeTcpOptions();
        foreach (var pair in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = pair.IndexOf('=');
            var key = eq < 0 ? pair : pair[..eq];
            var value = Uri.UnescapeDataString(eq < 0 ? "" : pair[(eq + 1)..]);
            options = key switch
            {
                "queues" => options with { IoQueues = Int(url, key, value) },
                "depth" => options with { QueueDepth = Int(url, key, value) },
                "digest" => value switch
                {
                    "none" => options with { HeaderDigest = false, DataDigest = false },
                    "header" => options with { HeaderDigest = true, DataDigest = false },
                    "data" => options with { HeaderDigest = false, DataDigest = true },
                    "both" => options with { HeaderDigest = true, DataDigest = true },
                    _ => throw new FormatException($"'{url}': digest is none, header, data or both, not '{value}'"),
                },
                "timeout" => options with { CommandTimeout = Seconds(url, key, value) },
                "connect-timeout" => options with { ConnectTimeout = Seconds(url, key, value) },
                "kato" => options with { KeepAliveTimeout = Seconds(url, key, value) },
                "max-transfer" => options with { MaxTransferBytes = Int(url, key, value) },
                "hostnqn" => options with { HostNqn = value },
                "min-size" => options with { MinimumSizeBytes = long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var min) ? min : throw new FormatException($"'{url}': min-size takes bytes, not '{value}'") },
                "sqflow" => options with { DisableSqFlowControl = value != "1" },
                _ => throw new FormatException($"'{url}': unknown option '{key}' (queues, depth, digest, timeout, connect-timeout, kato, max-transfer, hostnqn, sqflow, min-size)"),
            };
        }
        options.Validate();
        return (new NvmeTcpAddress(host, port, path, nsid), options);
    }

    private static int ParsePort(string url, string text) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is > 0 and < 65536
            ? port
            : throw new FormatException($"'{url}': bad port '{text}'");

    private static int Int(string url, string key, string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n)
            ? n
            : throw new FormatException($"'{url}': {key} takes a number, not '{value}'");

    private static TimeSpan Seconds(string url, string key, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && s >= 0
            ? TimeSpan.FromSeconds(s)
            : throw new FormatException($"'{url}': {key} takes seconds, not '{value}'");
}
