namespace ParaFS.Protocol.Framing;

/// <summary>
/// The largest sections a peer accepts. A frame over any of them closes the connection that
/// sent it (its boundaries can no longer be trusted) and harms no other connection.
/// </summary>
public sealed record FrameLimits
{
    public static readonly FrameLimits Default = new();

    public int MaxHeaderBytes { get; init; } = 64 * 1024;

    public int MaxMessageBytes { get; init; } = 4 * 1024 * 1024;

    /// <summary>File data per call: the largest stripe-sized read or write, with room to spare.</summary>
    public int MaxPayloadBytes { get; init; } = 16 * 1024 * 1024;
}
