using System.Data.Common;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Store;

/// <summary>
/// Rows as both stores read them: the same columns, in the same order, through ADO.NET's
/// <see cref="DbDataReader"/> (SQLite's and Npgsql's readers both are one).
/// </summary>
internal static class StoreRows
{
    public const string InodeColumns = "ino, type, mode, nlink, uid, gid, size, atime_ns, mtime_ns, ctime_ns, crtime_ns, rdev, parent, symlink, layout, policy";

    public const string TargetColumns = "id, pool, address, backend, state, capacity, free, objects, registered_ms, last_heartbeat_ms";

    /// <summary>Every row of <paramref name="reader"/> through <paramref name="row"/>; disposes the reader.</summary>
    public static List<T> All<T>(DbDataReader reader, Func<DbDataReader, T> row)
    {
        using (reader)
        {
            var list = new List<T>();
            while (reader.Read())
            {
                list.Add(row(reader));
            }

            return list;
        }
    }

    /// <summary>A row of <see cref="InodeColumns"/>.</summary>
    public static InodeRecord Inode(DbDataReader r) => new()
    {
        Ino = r.GetInt64(0),
        Type = (FileType)r.GetInt32(1),
        Mode = (uint)r.GetInt64(2),
        Nlink = (uint)r.GetInt64(3),
        Uid = (uint)r.GetInt64(4),
        Gid = (uint)r.GetInt64(5),
        Size = r.GetInt64(6),
        AtimeNs = r.GetInt64(7),
        MtimeNs = r.GetInt64(8),
        CtimeNs = r.GetInt64(9),
        CrtimeNs = r.GetInt64(10),
        Rdev = r.GetInt64(11),
        Parent = r.GetInt64(12),
        SymlinkTarget = r.IsDBNull(13) ? null : r.GetString(13),
        Layout = r.IsDBNull(14) ? null : Layout.Parser.ParseFrom(r.GetFieldValue<byte[]>(14)),
        Policy = r.IsDBNull(15) ? null : LayoutPolicy.Parser.ParseFrom(r.GetFieldValue<byte[]>(15)),
    };

    /// <summary>A row of <see cref="TargetColumns"/>.</summary>
    public static TargetRecord Target(DbDataReader r) => new()
    {
        Id = r.GetInt32(0),
        Pool = r.GetString(1),
        Address = r.GetString(2),
        Backend = r.GetString(3),
        State = (TargetState)r.GetInt32(4),
        CapacityBytes = r.GetInt64(5),
        FreeBytes = r.GetInt64(6),
        Objects = r.GetInt64(7),
        RegisteredMs = r.GetInt64(8),
        LastHeartbeatMs = r.GetInt64(9),
    };

    /// <summary>A row of name, ino, type, cookie.</summary>
    public static EntryRecord Entry(DbDataReader r) => new(r.GetString(0), r.GetInt64(1), (FileType)r.GetInt32(2), r.GetInt64(3));

    /// <summary>A row of id, target, object.</summary>
    public static ObjectDeletion Deletion(DbDataReader r) => new(r.GetInt64(0), r.GetInt32(1), r.GetInt64(2));
}
