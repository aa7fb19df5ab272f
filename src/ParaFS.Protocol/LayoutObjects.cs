namespace ParaFS.Protocol.Mds;

/// <summary>What a layout refers to, beyond the stripes that reads use.</summary>
public sealed partial class Layout
{
    /// <summary>Every object the layout references: its own, those of a migration in progress, and those retired but not deleted yet.</summary>
    public IEnumerable<StripeObject> AllObjects() => Objects.Concat(Pending?.Objects ?? []).Concat(Retired);
}
