using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace ParaFS.Protocol.Rpc;

/// <summary>
/// Where a server listens: <c>HOST:PORT</c> (TCP; <c>[::1]:PORT</c> for IPv6) or <c>unix:/path</c>
/// (a Unix domain socket). A client may be given several, comma-separated
/// (<c>mds1:7000,mds2:7000</c>: an active MDS and its standbys); it connects to the first that
/// answers (<see cref="Addresses"/>). A server listens on one.
/// </summary>
public sealed record RpcEndpoint
{
    private readonly IReadOnlyList<RpcEndpoint>? _list;

    private RpcEndpoint(string text, string? host, int port, string? unixPath, IReadOnlyList<RpcEndpoint>? list = null)
    {
        Text = text;
        Host = host;
        Port = port;
        UnixPath = unixPath;
        _list = list;
    }

    /// <summary>The addresses to try in turn: this one alone, or each of a comma-separated list.</summary>
    public IReadOnlyList<RpcEndpoint> Addresses => _list ?? [this];

    /// <summary>More than one address (a client's list of MDS processes); a server cannot listen on it.</summary>
    public bool IsList => _list is not null;

    public string Text { get; }

    public string? Host { get; }

    public int Port { get; }

    public string? UnixPath { get; }

    public bool IsUnix => UnixPath is not null;

    public static RpcEndpoint Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Contains(',', StringComparison.Ordinal))
        {
            var list = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Parse).ToList();
            if (list.Count == 0)
            {
                throw new FormatException($"'{text}' names no address");
            }

            return list.Count == 1 ? list[0] : new RpcEndpoint(string.Join(',', list.Select(e => e.Text)), list[0].Host, list[0].Port, list[0].UnixPath, list);
        }

        if (text.StartsWith("unix:", StringComparison.Ordinal))
        {
            var path = text["unix:".Length..];
            if (path.Length == 0)
            {
                throw new FormatException($"'{text}' names no socket path; write unix:/path/to/socket");
            }

            return new RpcEndpoint(text, null, 0, path);
        }

        var colon = text.LastIndexOf(':');
        if (colon <= 0 || colon == text.Length - 1)
        {
            throw new FormatException($"'{text}' is not HOST:PORT or unix:/path");
        }

        var host = text[..colon].Trim('[', ']');
        if (!int.TryParse(text[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > 65535)
        {
            throw new FormatException($"'{text}' has no valid port (0-65535)");
        }

        return new RpcEndpoint(text, host, port, null);
    }

    public static RpcEndpoint FromEndPoint(EndPoint endPoint) => endPoint switch
    {
        IPEndPoint ip => Parse(ip.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{ip.Address}]:{ip.Port}" : $"{ip.Address}:{ip.Port}"),
        UnixDomainSocketEndPoint unix => Parse("unix:" + unix),
        _ => throw new ArgumentException($"unsupported endpoint {endPoint}", nameof(endPoint)),
    };

    public async ValueTask<EndPoint> ResolveAsync(CancellationToken cancellationToken)
    {
        if (UnixPath is not null)
        {
            return new UnixDomainSocketEndPoint(UnixPath);
        }

        if (IPAddress.TryParse(Host, out var address))
        {
            return new IPEndPoint(address, Port);
        }

        var addresses = await Dns.GetHostAddressesAsync(Host!, cancellationToken).ConfigureAwait(false);
        var chosen = addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses.FirstOrDefault()
            ?? throw new SocketException((int)SocketError.HostNotFound);
        return new IPEndPoint(chosen, Port);
    }

    public override string ToString() => Text;

    // The text determines every other field (a list included), so it alone decides equality.
    public bool Equals(RpcEndpoint? other) => other is not null && Text == other.Text;

    public override int GetHashCode() => Text.GetHashCode(StringComparison.Ordinal);
}
