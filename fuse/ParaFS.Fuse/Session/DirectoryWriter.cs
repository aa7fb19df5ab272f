using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using ParaFS.Fuse.Protocol;

namespace ParaFS.Fuse.Session;

/// <summary>
/// Packs fuse_dirent / fuse_direntplus records into a request's buffer (reference 1.6): each record
/// is the struct, the name without NUL, zero padding to a multiple of 8; a record that would pass
/// the kernel's size is refused whole.
/// </summary>
internal sealed class DirectoryWriter(Request request) : FuseDirectoryBuffer
{
    private static readonly int DirentSize = Unsafe.SizeOf<FuseDirent>();
    private static readonly int DirentPlusSize = Unsafe.SizeOf<FuseDirentPlus>();

    private int _limit;

    /// <summary>Bytes packed so far: the reply payload.</summary>
    public int Position { get; private set; }

    public DirectoryWriter Reset(uint size)
    {
        _limit = (int)Math.Min(size, (uint)request.Capacity);
        Position = 0;
        return this;
    }

    public override bool Add(string name, ulong ino, uint type, long nextOffset)
    {
        var nameLength = Encoding.UTF8.GetByteCount(name);
        var record = Align8(DirentSize + nameLength);
        if (Position + record > _limit)
        {
            return false;
        }

        var span = request.Buffer.Slice(Position, record);
        var dirent = new FuseDirent { Ino = ino, Off = (ulong)nextOffset, NameLen = (uint)nameLength, Type = type };
        MemoryMarshal.Write(span, in dirent);
        Finish(span[DirentSize..], name, nameLength);
        Position += record;
        return true;
    }

    public override bool AddPlus(string name, FuseEntry entry, long nextOffset)
    {
        var nameLength = Encoding.UTF8.GetByteCount(name);
        var record = Align8(DirentPlusSize + nameLength);
        if (Position + record > _limit)
        {
            return false;
        }

        var span = request.Buffer.Slice(Position, record);
        var plus = new FuseDirentPlus
        {
            EntryOut = Wire.EntryOut(entry),
            Dirent = new FuseDirent
            {
                Ino = entry.Attr.Ino,
                Off = (ulong)nextOffset,
                NameLen = (uint)nameLength,
                Type = (entry.Attr.Mode >> 12) & 0xF,
            },
        };
        MemoryMarshal.Write(span, in plus);
        Finish(span[DirentPlusSize..], name, nameLength);
        Position += record;
        return true;
    }

    private static int Align8(int length) => (length + 7) & ~7;

    private static void Finish(Span<byte> tail, string name, int nameLength)
    {
        Encoding.UTF8.GetBytes(name, tail);
        tail[nameLength..].Clear();
    }
}
