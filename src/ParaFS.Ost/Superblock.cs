using System.Text.Json;
using System.Text.Json.Serialization;
using ParaFS.Common;
using ParaFS.Common.Interop;
using ParaFS.Common.Storage;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Ost;

/// <summary>
/// What a data directory is: the file system and target it belongs to, written once when the
/// first registration with the MDS assigns them (superblock.json), and checked at every start.
/// </summary>
public sealed record Superblock
{
    /// <summary>The layout this build reads and writes; a directory of a newer one is refused.</summary>
    public const int CurrentFormat = 1;

    public const string FileName = "superblock.json";

    public int Format { get; init; } = CurrentFormat;

    public required string FsId { get; init; }

    public string FsName { get; init; } = "";

    public required uint TargetId { get; init; }

    public required string Pool { get; init; }

    public required string Backend { get; init; }

    public DateTimeOffset Created { get; init; }

    /// <summary>How messages name this target: "target 3 (pool fast)".</summary>
    [JsonIgnore]
    public string Label => $"target {TargetId} (pool {Pool})";

    /// <summary>
    /// The superblock of <paramref name="dataDirectory"/>, or null when the directory is new (missing,
    /// or empty but for lost+found and the server's lock file). Anything else without a readable superblock is refused.
    /// </summary>
    public static Superblock? Load(string dataDirectory)
    {
        var path = Path.Combine(dataDirectory, FileName);
        if (!File.Exists(path))
        {
            if (Directory.Exists(dataDirectory)
                && Directory.EnumerateFileSystemEntries(dataDirectory).Any(e => Path.GetFileName(e) is not ("lost+found" or ExclusiveUse.FileName)))
            {
                throw new StartupException(
                    $"{dataDirectory} is not empty and holds no ParaFS superblock ({FileName}); "
                    + "give parafs ost an empty directory for a new target, or the data directory of an existing one");
            }

            return null;
        }

        Superblock? superblock;
        try
        {
            superblock = JsonSerializer.Deserialize(File.ReadAllBytes(path), SuperblockJson.Default.Superblock);
        }
        catch (JsonException e)
        {
            throw new StartupException($"the superblock {path} does not parse ({e.Message}); it is damaged or not a ParaFS superblock", e);
        }

        if (superblock is null || superblock.FsId.Length == 0 || superblock.TargetId == 0)
        {
            throw new StartupException($"the superblock {path} names no file system or target id; it is damaged");
        }

        if (superblock.Format > CurrentFormat)
        {
            throw new StartupException(
                $"{dataDirectory} was formatted by a newer ParaFS (superblock format {superblock.Format}); this one reads format {CurrentFormat}: upgrade parafs");
        }

        return superblock;
    }

    /// <summary>Writes the superblock durably: a temporary file, fsync, rename over, fsync of the directory.</summary>
    public void Write(string dataDirectory)
    {
        Directory.CreateDirectory(dataDirectory);
        var path = Path.Combine(dataDirectory, FileName);
        var temporary = path + ".new";
        using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            JsonSerializer.Serialize(stream, this, SuperblockJson.Default.Superblock);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temporary, path, overwrite: true);
        using var directory = Libc.OpenDirectory(dataDirectory);
        if (Libc.Fsync(directory) != 0)
        {
            throw Libc.Failure(Libc.LastErrno, $"fsync of {dataDirectory}");
        }
    }

    /// <summary>Refuses settings that contradict what the directory is.</summary>
    public void CheckSettings(string dataDirectory, string pool, string backend)
    {
        if (Backend != backend)
        {
            throw new StartupException(
                $"{dataDirectory} is {Label} with the {Backend} backend, not {backend}; start it with --backend {Backend}");
        }

        if (Pool != pool)
        {
            throw new StartupException(
                $"{dataDirectory} is {Label} of file system {FsId}, not of pool {pool}; start it with --pool {Pool} "
                + "(a target changes pool through the MDS, not by restarting it)");
        }
    }

    /// <summary>The refusal when the MDS at <paramref name="mds"/> serves another file system than this directory's.</summary>
    public StartupException OtherFileSystem(string dataDirectory, RpcEndpoint mds, string mdsFsId, string mdsFsName)
    {
        var ours = FsName.Length > 0 ? $"{FsId} ({FsName})" : FsId;
        var theirs = mdsFsName.Length > 0 ? $"{mdsFsId} ({mdsFsName})" : mdsFsId;
        return new StartupException(
            $"{dataDirectory} belongs to file system {ours} as {Label}, but the MDS at {mds} serves file system {theirs}; "
            + $"point --mds at the MDS of {FsId}, or give --data an empty directory to make a new target of {mdsFsId}");
    }
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(Superblock))]
internal sealed partial class SuperblockJson : JsonSerializerContext;
