using System.Globalization;

namespace ParaFS.Ost.Backends.Dir;

/// <summary>
/// Where an object's file lives: <c>objects/LL/MM/&lt;id as 16 hex digits&gt;</c>, LL and MM the
/// id's two lowest bytes. The MDS hands out ids in sequence, so the low bytes spread consecutive
/// objects evenly over 65536 leaf directories: 16 million objects make 256 entries in each.
/// </summary>
internal sealed class ObjectPaths(string dataDirectory)
{
    public const string ObjectsDirectoryName = "objects";

    public string Root { get; } = Path.Combine(dataDirectory, ObjectsDirectoryName);

    public string Leaf(ulong objectId) =>
        string.Create(CultureInfo.InvariantCulture, $"{Root}/{objectId & 0xff:x2}/{(objectId >> 8) & 0xff:x2}");

    public string Middle(ulong objectId) =>
        string.Create(CultureInfo.InvariantCulture, $"{Root}/{objectId & 0xff:x2}");

    public string File(ulong objectId) =>
        string.Create(CultureInfo.InvariantCulture, $"{Root}/{objectId & 0xff:x2}/{(objectId >> 8) & 0xff:x2}/{objectId:x16}");

    /// <summary>The id an object file's name spells, or false for anything else in the tree.</summary>
    public static bool TryParseName(ReadOnlySpan<char> name, out ulong objectId)
    {
        objectId = 0;
        return name.Length == 16 && ulong.TryParse(name, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out objectId);
    }
}
