namespace ParaFS.Common;

/// <summary>
/// The POSIX permission rule (owner, group or other bits; root bypasses reading and writing, and
/// may execute only what somebody may execute, or any directory: CAP_DAC_OVERRIDE). One place,
/// for the MDS's checks and the mount's access(2).
/// </summary>
public static class PosixPermissions
{
    public const int Read = 4;
    public const int Write = 2;
    public const int Execute = 1;

    /// <summary>Whether <paramref name="uid"/> (in the groups <paramref name="inGroup"/> says yes to) may <paramref name="want"/> on a file with these permission bits and owner.</summary>
    public static bool Allows(uint mode, bool isDirectory, uint ownerUid, uint ownerGid, uint uid, Func<uint, bool> inGroup, int want)
    {
        if (uid == 0)
        {
            return (want & Execute) == 0 || isDirectory || (mode & 0b001_001_001) != 0;
        }

        var bits = uid == ownerUid ? mode >> 6 : inGroup(ownerGid) ? mode >> 3 : mode;
        return (bits & want) == want;
    }
}
