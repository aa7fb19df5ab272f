using ParaFS.Common;
using ParaFS.Common.Storage;

namespace ParaFS.Ost.Backends.Block;

/// <summary>What an offline check of a block store found.</summary>
/// <param name="Format">The superblock.</param>
/// <param name="Objects">Objects in the index.</param>
/// <param name="UsedChunks">Chunks held by objects.</param>
/// <param name="JournalBlocks">Journal blocks replayed after the newest checkpoint.</param>
/// <param name="Leaked">Chunks held past their object's end: nothing can read them, and only a truncate that crashed halfway leaves them.</param>
/// <param name="Problems">Doubly-owned or out-of-range chunks and other inconsistencies; empty when the store is sound.</param>
public sealed record BlockCheckReport(BlockFormat Format, int Objects, long UsedChunks, long JournalBlocks, IReadOnlyList<string> Leaked, IReadOnlyList<string> Problems)
{
    public bool Clean => Leaked.Count == 0 && Problems.Count == 0;
}

/// <summary>
/// parafs ost fsck for the block backend: reads the superblock, the newest checkpoint and the
/// journal exactly as an open does, changing nothing, and reports chunks owned twice, chunks
/// outside the data region, and chunks leaked past an object's end. The free map is derived from
/// the objects' maps, so a chunk no object holds is free by construction.
/// </summary>
public static class BlockCheck
{
    public static async Task<BlockCheckReport> RunAsync(IBlockDevice device, CancellationToken cancellationToken = default)
    {
        var format = await BlockBackend.PeekAsync(device, cancellationToken).ConfigureAwait(false)
            ?? throw new ParaFsException(Errno.EINVAL, $"{device.Description} holds no ParaFS block store (no superblock)");
        var index = new BlockIndex(format.ChunkCount);
        var journal = new BlockJournal(device, format);
        var blocks = await journal.ReplayAsync(index, cancellationToken).ConfigureAwait(false);
        var leaked = new List<string>();
        foreach (var o in index.Objects.Values)
        {
            foreach (var (chunkIndex, chunk) in o.Chunks)
            {
                if (chunkIndex * format.ChunkSize >= o.Size)
                {
                    leaked.Add($"device chunk {chunk} is held by object {o.Id} as chunk {chunkIndex}, past its end ({o.Size} bytes)");
                }
            }
        }

        return new BlockCheckReport(format, index.Objects.Count, index.UsedChunks, blocks, leaked, index.Problems);
    }
}
