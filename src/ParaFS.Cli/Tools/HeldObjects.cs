namespace ParaFS.Cli.Tools;

/// <summary>
/// The object ids one target holds, as its listing gives them (ascending), and which of them the
/// MDS refers to: fsck's memory, 8 bytes and 1 bit per object held. An id the MDS names but the
/// target does not hold costs nothing (objects are made by their first write, so there can be
/// many). Set membership would cost about three times as much per id, for every id on both sides.
/// </summary>
internal sealed class HeldObjects
{
    private ulong[] _ids = new ulong[1024];
    private ulong[] _referenced = [];

    /// <summary>How many ids the target holds.</summary>
    public int Count { get; private set; }

    /// <summary>How many of them are referenced (<see cref="Refer"/> said true).</summary>
    public int Referenced { get; private set; }

    /// <summary>Appends the next page of the target's listing (ascending, each id above the last).</summary>
    public void AddPage(IReadOnlyList<ulong> ids)
    {
        if (_referenced.Length > 0)
        {
            throw new InvalidOperationException("the listing is complete once references are counted");
        }

        foreach (var id in ids)
        {
            if (Count > 0 && id <= _ids[Count - 1])
            {
                throw new InvalidDataException($"the target listed object 0x{id:x} after 0x{_ids[Count - 1]:x}: its listing is not ascending");
            }

            if (Count == _ids.Length)
            {
                Array.Resize(ref _ids, checked(_ids.Length * 2));
            }

            _ids[Count++] = id;
        }
    }

    /// <summary>Records a reference; true when the target holds the id and it had no reference yet.</summary>
    public bool Refer(ulong id)
    {
        if (_referenced.Length == 0)
        {
            _referenced = new ulong[(Count + 63) / 64 + 1];
        }

        var index = Array.BinarySearch(_ids, 0, Count, id);
        if (index < 0)
        {
            return false;
        }

        ref var word = ref _referenced[index >> 6];
        var bit = 1UL << (index & 63);
        if ((word & bit) != 0)
        {
            return false;
        }

        word |= bit;
        Referenced++;
        return true;
    }

    /// <summary>The ids held and not referenced, ascending.</summary>
    public IEnumerable<ulong> Unreferenced()
    {
        for (var i = 0; i < Count; i++)
        {
            if (_referenced.Length == 0 || (_referenced[i >> 6] & (1UL << (i & 63))) == 0)
            {
                yield return _ids[i];
            }
        }
    }
}
