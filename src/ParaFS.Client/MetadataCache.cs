using System.Collections.Concurrent;
using ParaFS.Protocol.Mds;

namespace ParaFS.Client;

/// <summary>
/// Attributes by inode and entries by (directory, name), each trusted for a short lifetime and
/// dropped at once when the MDS calls back that they changed.
/// </summary>
internal sealed class MetadataCache(TimeSpan lifetime)
{
    private readonly ConcurrentDictionary<ulong, (AttrReply Reply, long Expires)> _attrs = new();
    private readonly ConcurrentDictionary<(ulong Parent, string Name), (ulong Ino, long Expires)> _entries = new();

    public AttrReply? GetAttr(ulong ino) =>
        _attrs.TryGetValue(ino, out var e) && e.Expires > Environment.TickCount64 ? e.Reply : null;

    public void PutAttr(AttrReply reply) =>
        _attrs[reply.Attr.Ino] = (reply, Environment.TickCount64 + (long)lifetime.TotalMilliseconds);

    public ulong? GetEntry(ulong parent, string name) =>
        _entries.TryGetValue((parent, name), out var e) && e.Expires > Environment.TickCount64 ? e.Ino : null;

    public void PutEntry(ulong parent, string name, ulong ino) =>
        _entries[(parent, name)] = (ino, Environment.TickCount64 + (long)lifetime.TotalMilliseconds);

    public void DropAttr(ulong ino) => _attrs.TryRemove(ino, out _);

    public void DropEntry(ulong parent, string name) => _entries.TryRemove((parent, name), out _);
}
