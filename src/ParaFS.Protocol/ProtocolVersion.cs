namespace ParaFS.Protocol;

/// <summary>
/// The wire protocol's version. Bump <see cref="Current"/> when a frame, header or message changes
/// incompatibly; raise <see cref="MinimumSupported"/> only when the older form can no longer be served.
/// </summary>
public static class ProtocolVersion
{
    public const uint Current = 1;

    public const uint MinimumSupported = 1;
}
